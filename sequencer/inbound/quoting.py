"""Cut a reply down to what the person actually wrote.

Keyword rules (unsubscribe, sentiment, "left the company") must only look at the
new text: our own outbound email is usually quoted below it, and its footer says
"unsubscribe". Clients mark the start of the history in many ways; the first
marker found ends the reply. Signatures and mobile footers are cut as well.
"""

from __future__ import annotations

import re

MAX_REPLY_CHARS = 4000
"""``reply_text`` is bounded so a pasted novel cannot bloat stored classifications."""

_WROTE = re.compile(
    r"^\s*(?:"
    r"On\b.{0,300}\bwrote:|"  # Gmail / Apple Mail, English
    r"Am\b.{0,300}\bschrieb\b.{0,200}:|"  # German
    r"Le\b.{0,300}\ba écrit\s?:|"  # French
    r"El\b.{0,300}\bescribió:|"  # Spanish
    r"Op\b.{0,300}\bschreef\b.{0,200}:|"  # Dutch
    r"Il giorno\b.{0,300}\bha scritto:|"
    r"Il\b.{0,300}\bha scritto:|"  # Italian
    r"Em\b.{0,300}\bescreveu:|"  # Portuguese
    r"Den\b.{0,300}\bskrev\b.{0,200}:|"  # Swedish
    r"W dniu\b.{0,300}\bpisze:"  # Polish
    r")\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"Mensaje original|Oorspronkelijk bericht|Messaggio originale|Mensagem original|"
    r"Originalmeddelande|Forwarded message|Weitergeleitete Nachricht)\s*-{2,}|_{20,})\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"^\s*\**(?:From|Von|De|Van|Da|Från|Fra)\s?\**\s?:\s?\**\s*\S", re.IGNORECASE
)
_HEADER_NEXT = re.compile(
    r"^\s*\**(?:Sent|Date|To|Subject|Gesendet|Datum|An|Betreff|Envoyé|Date|À|Objet|"
    r"Enviado(?: el)?|Fecha|Para|Asunto|Verzonden|Aan|Onderwerp|Inviato|Data|A|Oggetto|"
    r"Assunto|Skickat|Till|Ämne|Sendt|Emne)\s?\**\s?:",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(
    r"^\s*(?:--\s*|Sent from my \w+.*|Sent from (?:Outlook|Mail|Yahoo Mail).*|"
    r"Get Outlook for \w+.*|Von meinem \w+ gesendet.*|Envoyé de mon \w+.*|"
    r"Enviado desde mi \w+.*|Verzonden vanaf mijn \w+.*|Inviato da \w+.*|"
    r"Enviado do meu \w+.*|Skickat från min \w+.*)$",
    re.IGNORECASE,
)
_FOOTER = re.compile(r"https?://|www\.|unsubscribe|abmelden|d[ée]sinscri", re.IGNORECASE)


def strip_quoted(text: str) -> str:
    """The reply above the quoted history and signature, bounded in length.

    Joins up to three lines when looking for "On ... wrote:" because clients wrap
    that attribution line; drops any remaining ``>`` lines (inline quoting).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        if line.lstrip().startswith(">") and _quote_block_follows(lines, i):
            cut = i
            break
        if _SEPARATOR.match(line) or _SIGNATURE.match(line):
            cut = i
            break
        if _starts_attribution(line) and any(
            _WROTE.match(" ".join(lines[i : i + n])) for n in (1, 2, 3)
        ):
            cut = i
            break
        if _HEADER_FROM.match(line) and any(
            _HEADER_NEXT.match(nxt) for nxt in lines[i + 1 : i + 4]
        ):
            cut = i
            break
    kept = [line for line in lines[:cut] if not line.lstrip().startswith(">")]
    result = "\n".join(kept).strip()
    result = re.sub(r"\n{3,}", "\n\n", result)
    return result[:MAX_REPLY_CHARS]


def _starts_attribution(line: str) -> bool:
    word = line.strip().split(" ", 1)[0].lower() if line.strip() else ""
    return word in {"on", "am", "le", "el", "op", "il", "em", "den", "w"}


def _quote_block_follows(lines: list[str], index: int) -> bool:
    """A ``>`` line starts the history only if nothing but quotes, a signature or
    footer lines (links, "unsubscribe") follow it. Bottom posting interleaves
    answers with quotes; there only the ``>`` lines are dropped."""
    rest = [ln for ln in lines[index:] if ln.strip()]
    return all(
        ln.lstrip().startswith(">") or _SIGNATURE.match(ln) or _FOOTER.search(ln)
        for ln in rest[:50]
    )
