"""The time zone of each state or province, for countries that span several zones.

Keyed by ISO 3166-2 code (what ``countries.region_code`` gives). A state that itself spans
zones gets the zone most of its people live in (Texas: Central; Florida, Michigan, Indiana,
Kentucky: Eastern; Idaho: Mountain; Nunavut: Eastern; Mato Grosso do Sul its own). A region
not listed here infers nothing, so the import warns rather than guess.
"""

from __future__ import annotations

_NY, _CHI, _DEN, _LA = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"
_SP, _FOR, _MEX = "America/Sao_Paulo", "America/Fortaleza", "America/Mexico_City"

REGION_ZONES = {
    # United States, DC and the territories
    "US-AL": _CHI, "US-AK": "America/Anchorage", "US-AZ": "America/Phoenix", "US-AR": _CHI, "US-CA": _LA,
    "US-CO": _DEN, "US-CT": _NY, "US-DE": _NY, "US-DC": _NY, "US-FL": _NY, "US-GA": _NY,
    "US-HI": "Pacific/Honolulu", "US-ID": "America/Boise", "US-IL": _CHI, "US-IN": "America/Indiana/Indianapolis",
    "US-IA": _CHI, "US-KS": _CHI, "US-KY": "America/Kentucky/Louisville", "US-LA": _CHI, "US-ME": _NY,
    "US-MD": _NY, "US-MA": _NY, "US-MI": "America/Detroit", "US-MN": _CHI, "US-MS": _CHI, "US-MO": _CHI,
    "US-MT": _DEN, "US-NE": _CHI, "US-NV": _LA, "US-NH": _NY, "US-NJ": _NY, "US-NM": _DEN, "US-NY": _NY,
    "US-NC": _NY, "US-ND": _CHI, "US-OH": _NY, "US-OK": _CHI, "US-OR": _LA, "US-PA": _NY, "US-RI": _NY,
    "US-SC": _NY, "US-SD": _CHI, "US-TN": _CHI, "US-TX": _CHI, "US-UT": _DEN, "US-VT": _NY, "US-VA": _NY,
    "US-WA": _LA, "US-WV": _NY, "US-WI": _CHI, "US-WY": _DEN, "US-PR": "America/Puerto_Rico",
    "US-GU": "Pacific/Guam", "US-VI": "America/St_Thomas", "US-AS": "Pacific/Pago_Pago",
    "US-MP": "Pacific/Saipan",
    # Canada
    "CA-AB": "America/Edmonton", "CA-BC": "America/Vancouver", "CA-MB": "America/Winnipeg",
    "CA-NB": "America/Moncton", "CA-NL": "America/St_Johns", "CA-NS": "America/Halifax",
    "CA-NT": "America/Edmonton", "CA-NU": "America/Iqaluit", "CA-ON": "America/Toronto",
    "CA-PE": "America/Halifax", "CA-QC": "America/Toronto", "CA-SK": "America/Regina",
    "CA-YT": "America/Whitehorse",
    # Australia
    "AU-NSW": "Australia/Sydney", "AU-VIC": "Australia/Melbourne", "AU-QLD": "Australia/Brisbane",
    "AU-WA": "Australia/Perth", "AU-SA": "Australia/Adelaide", "AU-TAS": "Australia/Hobart",
    "AU-ACT": "Australia/Sydney", "AU-NT": "Australia/Darwin",
    # Brazil
    "BR-AC": "America/Rio_Branco", "BR-AL": "America/Maceio", "BR-AP": "America/Belem", "BR-AM": "America/Manaus",
    "BR-BA": "America/Bahia", "BR-CE": _FOR, "BR-DF": _SP, "BR-ES": _SP, "BR-GO": _SP, "BR-MA": _FOR,
    "BR-MT": "America/Cuiaba", "BR-MS": "America/Campo_Grande", "BR-MG": _SP, "BR-PA": "America/Belem",
    "BR-PB": _FOR, "BR-PR": _SP, "BR-PE": "America/Recife", "BR-PI": _FOR, "BR-RJ": _SP, "BR-RN": _FOR,
    "BR-RS": _SP, "BR-RO": "America/Porto_Velho", "BR-RR": "America/Boa_Vista", "BR-SC": _SP, "BR-SP": _SP,
    "BR-SE": "America/Maceio", "BR-TO": "America/Araguaina",
    # Mexico
    "MX-AGU": _MEX, "MX-BCN": "America/Tijuana", "MX-BCS": "America/Mazatlan", "MX-CAM": "America/Merida",
    "MX-CHP": _MEX, "MX-CHH": "America/Chihuahua", "MX-CMX": _MEX, "MX-COA": "America/Monterrey", "MX-COL": _MEX,
    "MX-DUR": "America/Monterrey", "MX-GUA": _MEX, "MX-GRO": _MEX, "MX-HID": _MEX, "MX-JAL": _MEX, "MX-MEX": _MEX,
    "MX-MIC": _MEX, "MX-MOR": _MEX, "MX-NAY": "America/Mazatlan", "MX-NLE": "America/Monterrey", "MX-OAX": _MEX,
    "MX-PUE": _MEX, "MX-QUE": _MEX, "MX-ROO": "America/Cancun", "MX-SLP": _MEX, "MX-SIN": "America/Mazatlan",
    "MX-SON": "America/Hermosillo", "MX-TAB": _MEX, "MX-TAM": "America/Matamoros", "MX-TLA": _MEX, "MX-VER": _MEX,
    "MX-YUC": "America/Merida", "MX-ZAC": _MEX,
}

# Countries with zones of different offsets where one zone is home to most people: without a
# region, that one (the mainland of Spain and Portugal, Java, eastern China, ...).
PRINCIPAL_ZONES = {
    "CD": "Africa/Kinshasa", "CL": "America/Santiago", "CN": "Asia/Shanghai", "EC": "America/Guayaquil",
    "ES": "Europe/Madrid", "GL": "America/Nuuk", "ID": "Asia/Jakarta", "MN": "Asia/Ulaanbaatar",
    "NZ": "Pacific/Auckland", "PG": "Pacific/Port_Moresby", "PT": "Europe/Lisbon", "UA": "Europe/Kyiv",
}
