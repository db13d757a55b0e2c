"""Countries and their states as CRM exports write them, to ISO 3166 codes.

Exports write a country as a name ("Germany", "GERMANY", "United States"), an ISO code
("DE", "USA") or a colloquial name ("UK", "Russia"); a state as its code ("CA", "NSW") or
its name ("California"). ``pycountry`` holds the ISO 3166 names and codes; the aliases
below are the common names it does not (checked against its lookup, which tries code,
name, official name and common name, case-insensitively).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pycountry

# Names people write that ISO 3166 does not use (lower case, accents kept out).
ALIASES = {
    "uk": "GB", "u.k.": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB",
    "wales": "GB", "northern ireland": "GB", "u.s.": "US", "u.s.a.": "US", "us of a": "US", "america": "US",
    "united states of america": "US", "russia": "RU", "turkey": "TR", "turkiye": "TR", "holland": "NL",
    "the netherlands": "NL", "czech republic": "CZ", "korea": "KR", "republic of korea": "KR",
    "north korea": "KP", "vietnam": "VN", "laos": "LA", "syria": "SY", "moldova": "MD", "macedonia": "MK",
    "ivory coast": "CI", "cape verde": "CV", "swaziland": "SZ", "burma": "MM", "east timor": "TL",
    "vatican": "VA", "vatican city": "VA", "palestine": "PS", "uae": "AE", "the uae": "AE",
    "hong kong sar": "HK", "macau": "MO", "kosovo": "XK",
    # the names exports from a local-language CRM write
    "deutschland": "DE", "osterreich": "AT", "schweiz": "CH", "suisse": "CH", "svizzera": "CH",
    "espana": "ES", "italia": "IT", "brasil": "BR", "mexico": "MX", "nederland": "NL", "belgie": "BE",
    "belgique": "BE", "sverige": "SE", "norge": "NO", "danmark": "DK", "suomi": "FI", "polska": "PL",
    "cesko": "CZ", "magyarorszag": "HU", "ellada": "GR", "eire": "IE",
}
_ISO_CODES_WE_ADD = {"XK": "Kosovo"}  # user-assigned, but every CRM has it


def _plain(value: str) -> str:
    """Lower case, accents removed, inner spaces collapsed: "  Österreich " -> "osterreich"."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", text).strip().lower()


@lru_cache(maxsize=4096)
def country_code(value: str) -> str:
    """The ISO 3166 alpha-2 code of ``value``; ``ValueError`` naming the value if none fits."""
    written = value.strip()
    plain = _plain(written)
    if plain.upper() in _ISO_CODES_WE_ADD:
        return plain.upper()
    if plain in ALIASES:
        return ALIASES[plain]
    for candidate in (written, plain, plain.removeprefix("the ")):
        try:
            return pycountry.countries.lookup(candidate).alpha_2
        except LookupError:
            continue
    raise ValueError(f"unknown country {written!r} (write a name like 'Germany' or a code like 'DE')")


@lru_cache(maxsize=4096)
def region_code(country: str, value: str) -> str:
    """``value`` as the ISO 3166-2 code of a subdivision of ``country`` ("California" -> "US-CA"),
    or ``value`` as written when it names none (a county, a city): it is kept, never refused."""
    written = value.strip()
    plain = _plain(written)
    if not country or not plain:
        return written
    for subdivision in pycountry.subdivisions.get(country_code=country) or ():
        code = subdivision.code.upper()
        if plain.upper() in (code, code.split("-", 1)[1]) or _plain(subdivision.name) == plain:
            return code
    return written
