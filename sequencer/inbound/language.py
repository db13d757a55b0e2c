"""A rough guess of which language a short text is written in.

Only used to pick conventions (day-first numeric dates) and to explain decisions;
the keyword rules themselves are multilingual and do not depend on it. Counting
frequent function words is crude but dependable on the few sentences of an
auto-reply, and needs no model or dependency.
"""

from __future__ import annotations

import re

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "i",
            "am",
            "will",
            "be",
            "you",
            "of",
            "to",
            "my",
            "with",
            "for",
            "is",
            "office",
            "please",
            "back",
        ]
    ),
    "de": frozenset(
        [
            "ich",
            "und",
            "der",
            "die",
            "das",
            "bin",
            "nicht",
            "sie",
            "mit",
            "ihre",
            "im",
            "zum",
            "bis",
            "ab",
            "wieder",
        ]
    ),
    "fr": frozenset(
        [
            "je",
            "le",
            "la",
            "les",
            "et",
            "suis",
            "vous",
            "de",
            "du",
            "au",
            "avec",
            "mon",
            "pour",
            "est",
            "sera",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "la",
            "los",
            "y",
            "estoy",
            "de",
            "del",
            "que",
            "con",
            "mi",
            "para",
            "por",
            "su",
            "hasta",
        ]
    ),
    "nl": frozenset(
        [
            "ik",
            "en",
            "de",
            "het",
            "ben",
            "niet",
            "u",
            "met",
            "mijn",
            "voor",
            "van",
            "tot",
            "ben",
            "weer",
        ]
    ),
    "it": frozenset(
        ["il", "la", "e", "sono", "di", "che", "con", "per", "non", "al", "mio", "fino", "sarò"]
    ),
    "pt": frozenset(
        ["eu", "e", "estou", "de", "que", "com", "para", "não", "o", "os", "meu", "até", "ao"]
    ),
    "sv": frozenset(["jag", "och", "är", "att", "inte", "med", "för", "på", "till", "min", "mig"]),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def guess_language(text: str) -> str | None:
    """ISO 639-1 code of the most likely language, or None for too little text."""
    words = [w.lower() for w in _WORD.findall(text[:5000])]
    if len(words) < 3:
        return None
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] >= 2 else None
