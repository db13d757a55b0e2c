"""The date an out-of-office sender says they will be back.

The engine pauses an enrollment until this date, so a wrong date far in the
future is worse than none: only dates on or after the message's own date and at
most ~13 months ahead are believed, and None means "not stated".

How a date is chosen: every date-like phrase is found (ISO, numeric, "3 December",
"December 3rd", "5. Januar", "7 de enero", weekdays, "tomorrow", "next week" in
eight languages). Phrases next to a return cue ("back", "until", "bis", "de retour",
"hasta", "terug", "rientro", "até", "tillbaka"...) win over the others, explicit
dates win over weekdays, and the earliest in the text breaks ties. Relative phrases
and dates without a year are resolved against the message's Date in the sender's
own time zone: a yearless date is the next such date not before the message date.

Ambiguous numeric dates (12/03/2026) are read day-first unless ``day_first`` is
False; see ``prefers_day_first`` for how the caller decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "january jan januar jänner janvier enero januari gennaio janeiro",
        "february feb februar février fevrier febrero februari febbraio fevereiro",
        "march mar märz maerz mars marzo maart março marco",
        "april apr avril abril aprile",
        "may mai mayo mei maggio maio maj",
        "june jun juni juin junio giugno junho",
        "july jul juli juillet julio luglio julho",
        "august aug août aout agosto augustus augusti",
        "september sep sept septembre septiembre setiembre settembre setembro",
        "october oct oktober octobre octubre ottobre outubro okt",
        "november nov novembre noviembre novembro",
        "december dec dezember décembre decembre diciembre dicembre dezembro dez",
    ],
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number

_WEEKDAYS: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "monday montag lundi lunes maandag lunedì lunedi segunda-feira segunda måndag",
        "tuesday dienstag mardi martes dinsdag martedì martedi terça-feira terça tisdag",
        (
            "wednesday mittwoch mercredi miércoles miercoles woensdag mercoledì mercoledi "
            "quarta-feira quarta onsdag"
        ),
        "thursday donnerstag jeudi jueves donderdag giovedì giovedi quinta-feira quinta torsdag",
        "friday freitag vendredi viernes vrijdag venerdì venerdi sexta-feira sexta fredag",
        "saturday samstag samedi sábado sabado zaterdag sabato lördag",
        "sunday sonntag dimanche domingo zondag domenica söndag",
    ]
):
    for _name in _names.split():
        _WEEKDAYS[_name] = _number

_RELATIVE: dict[str, int] = {
    "day after tomorrow": 2,
    "übermorgen": 2,
    "après-demain": 2,
    "pasado mañana": 2,
    "overmorgen": 2,
    "dopodomani": 2,
    "depois de amanhã": 2,
    "i övermorgon": 2,
    "tomorrow": 1,
    "morgen": 1,
    "demain": 1,
    "mañana": 1,
    "domani": 1,
    "amanhã": 1,
    "imorgon": 1,
    "i morgon": 1,
}
_NEXT_WEEK = (
    "next week",
    "nächste woche",
    "nächsten woche",
    "la semaine prochaine",
    "la próxima semana",
    "la semana que viene",
    "volgende week",
    "la prossima settimana",
    "na próxima semana",
    "nästa vecka",
)


def _alternation(words: object) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))  # type: ignore[arg-type]


_MONTH = _alternation(_MONTHS)
_DATE = re.compile(
    rf"(?P<iso>(?<!\d)(?P<iy>\d{{4}})-(?P<im>\d{{1,2}})-(?P<id>\d{{1,2}})(?!\d))"
    rf"|(?P<num>(?<![\d./])(?P<na>\d{{1,2}})(?P<sep>[./-])(?P<nb>\d{{1,2}})"
    rf"(?:(?P=sep)(?P<ny>\d{{4}}|\d{{2}}))?(?P<trail>\.)?(?![\d/]|\.\d|-\d))"
    rf"|(?P<dm>(?<!\d)(?P<dd>\d{{1,2}})(?:st|nd|rd|th|er|º|°|e)?\.?\s*(?:de\s+|of\s+)?"
    rf"(?P<dmon>{_MONTH})\b\.?(?:,?\s*(?:de\s+)?(?P<dy>\d{{4}})(?!\d))?)"
    rf"|(?P<md>\b(?P<mmon>{_MONTH})\b\.?\s+(?P<md_d>\d{{1,2}})(?:st|nd|rd|th)?(?![\d:])"
    rf"(?:,?\s*(?P<my>\d{{4}})(?!\d))?)"
    rf"|(?P<rel>\b(?:{_alternation(_RELATIVE)})\b)"
    rf"|(?P<nw>\b(?:{_alternation(_NEXT_WEEK)})\b)"
    rf"|(?P<wd>\b(?:{_alternation(_WEEKDAYS)})\b)",
    re.IGNORECASE,
)
_CUE = re.compile(
    r"\b(?:back|return|returning|returns|until|till|'til|through|available again|"
    r"reachable again|in the office|wieder|zurück|bis|retour|rentre|jusqu|reprendrai|"
    r"hasta|regreso|regresaré|vuelta|volveré|de vuelta|terug|tot|vanaf|weer|rientro|"
    r"rientrerò|fino|torno|tornerò|ritorno|de volta|regresso|retorno|retornarei|até|"
    r"volto|tillbaka|åter|tills|t\.o\.m)\b",
    re.IGNORECASE,
)
_CUE_AFTER = re.compile(
    r"\b(?:back|return|returning|wieder|zurück|retour|de vuelta|terug|weer|de volta|"
    r"tillbaka|åter)\b",
    re.IGNORECASE,
)
_MAX_AHEAD = timedelta(days=400)


@dataclass(frozen=True)
class ReturnDate:
    """A resolved return date and the phrase it came from (for evidence)."""

    date: date
    phrase: str


def prefers_day_first(
    language: str | None, content_language: str = "", sender_domain: str = ""
) -> bool:
    """Whether ambiguous numeric dates should be read day-first.

    Month-first is the US habit only, so: an explicit ``Content-Language`` decides
    (en-US month-first, anything else day-first); otherwise a non-English text is
    day-first; otherwise English from a country-code domain other than .us
    (.co.uk, .ie, .com.au, .in...) is day-first; plain English from .com/.net/.io
    and the like is read month-first.
    """
    tag = content_language.strip().lower()
    if tag:
        return tag.split(",")[0].strip() != "en-us"
    if language and language != "en":
        return True
    tld = sender_domain.rsplit(".", 1)[-1].lower() if "." in sender_domain else ""
    return len(tld) == 2 and tld != "us"


def _with_year(day: int, month: int, year: int | None, base: date | None) -> date | None:
    try:
        if year is not None:
            if year < 100:
                year += 2000
            return date(year, month, day)
        if base is None:
            return None
        found = date(base.year, month, day)
        if found < base:
            found = date(base.year + 1, month, day)
        return found
    except ValueError:
        return None


def _resolve(match: re.Match[str], base: date | None, day_first: bool) -> tuple[date | None, int]:
    """The date a phrase means and its precision (2 explicit date, 1 relative)."""
    g = match.groupdict()
    if g["iso"]:
        return _with_year(int(g["id"]), int(g["im"]), int(g["iy"]), base), 2
    if g["num"]:
        a, b, sep = int(g["na"]), int(g["nb"]), g["sep"]
        year = int(g["ny"]) if g["ny"] else None
        if year is None and sep == "-":
            return None, 0
        if year is None and sep == "." and not g["trail"]:
            return None, 0
        first = day_first or sep == "." or a > 12
        if b > 12:
            first = False
        day, month = (a, b) if first else (b, a)
        return _with_year(day, month, year, base), 2
    if g["dm"]:
        year = int(g["dy"]) if g["dy"] else None
        return _with_year(int(g["dd"]), _MONTHS[g["dmon"].lower()], year, base), 2
    if g["md"]:
        year = int(g["my"]) if g["my"] else None
        return _with_year(int(g["md_d"]), _MONTHS[g["mmon"].lower()], year, base), 2
    if base is None:
        return None, 0
    if g["rel"]:
        return base + timedelta(days=_RELATIVE[" ".join(g["rel"].lower().split())]), 1
    if g["nw"]:
        return base + timedelta(days=7 - base.weekday()), 1
    target = _WEEKDAYS[g["wd"].lower()]
    return base + timedelta(days=(target - base.weekday() - 1) % 7 + 1), 1


def _cued(text: str, match: re.Match[str]) -> bool:
    before = text[max(0, match.start() - 50) : match.start()]
    after = text[match.end() : match.end() + 30]
    before = re.split(r"[.!?;\n]\s", before)[-1]
    after = re.split(r"[.!?;\n]", after)[0]
    return bool(_CUE.search(before) or _CUE_AFTER.search(after))


def find_return_date(
    text: str, sent: datetime | None, *, day_first: bool = True
) -> ReturnDate | None:
    """The return date stated in an out-of-office text, or None.

    ``sent`` is the message's Date (ideally in the sender's offset); without it only
    fully written dates with a year can be resolved. Never raises.
    """
    base = sent.date() if sent is not None else None
    candidates: list[tuple[int, int, int, date, str]] = []
    for match in _DATE.finditer(text[:20_000]):
        when, precision = _resolve(match, base, day_first)
        if when is None:
            continue
        if base is not None and not (base <= when <= base + _MAX_AHEAD):
            continue
        cued = _cued(text, match)
        if precision == 1 and not cued:
            continue  # "Guten Morgen", "por la mañana", "see you Monday" without a cue
        candidates.append((-int(cued), -precision, match.start(), when, match.group(0).strip()))
    if not candidates:
        return None
    _, _, _, when, phrase = min(candidates)
    return ReturnDate(when, phrase.rstrip(".,"))
