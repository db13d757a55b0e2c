"""What a reply says: unsubscribe request, "left the company", and sentiment.

All checks run on the reply text with quoted history and signature already cut
(see ``quoting``), so our own footer ("unsubscribe here") or the quoted pitch can
never trigger them. Lines that look like a footer (a link, "click", "manage your
preferences") are ignored for the unsubscribe check for the same reason.

Sentiment is deliberately simple keyword hinting for routing and reporting, not
analysis: negative phrases are matched first and removed, so "not interested"
does not also count as "interested".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sequencer.inbound.parse import ParsedMessage

_UNSUBSCRIBE = re.compile(
    r"\bunsubscribe\b|\bremove (?:me|us|my (?:e-?mail|address)|this (?:e-?mail|address))\b|"
    r"take (?:me|us) off|\bopt(?:ing)? (?:me )?out\b|stop (?:e-?mail|emailing|contacting|"
    r"messaging|sending|writing)|(?:do not|don't|dont) (?:e-?mail|contact|write to) (?:me|us)"
    r"|no (?:more|further) e-?mails|off (?:your|the) (?:mailing )?list|"
    r"austragen|abmelden|keine (?:weiteren )?(?:e-?mails|nachrichten)|nicht mehr (?:kontaktieren|anschreiben)|"
    r"d[ée]sinscri|d[ée]sabonn|retirez[- ]moi|ne plus (?:me )?(?:contacter|[ée]crire)|"
    r"darme de baja|dar(?:me)? de baja|no me (?:escriba|contacte)|"
    r"afmelden|uitschrijven|niet meer (?:mailen|contacteren)|"
    r"cancellami|disiscriv|non contattarmi|"
    r"descadastr|n[ãa]o me (?:envie|contate)|"
    r"avregistrera|avsluta prenumeration|sluta (?:maila|skicka)",
    re.IGNORECASE,
)
_BARE_STOP = re.compile(r"^\W*(?:stop|stopp|arr[êe]ter|basta|halt)\W*$", re.IGNORECASE)
_FOOTER_LINE = re.compile(
    r"https?://|www\.|click|klicken|cliquez|haga clic|manage (?:your )?preferences|"
    r"this (?:e-?mail|message) (?:was sent|is confidential)",
    re.IGNORECASE,
)
_LEFT_COMPANY = re.compile(
    r"no longer (?:with|at|employed|works? (?:at|for)|working (?:at|for|with)|"
    r"part of|a member of)|(?:has|have) (?:left|departed)(?: the (?:company|organi[sz]ation|firm))?\b|"
    r"is no longer (?:employed|with)|left the (?:company|organi[sz]ation|firm)|"
    r"nicht mehr (?:im unternehmen|bei uns|f[üu]r (?:uns|\w+) t[äa]tig|besch[äa]ftigt)|"
    r"(?:hat|haben) (?:das unternehmen|uns|die firma) verlassen|"
    r"ne fait plus partie|a quitt[ée] (?:l'entreprise|la soci[ée]t[ée]|notre)|"
    r"ne travaille plus|ya no (?:trabaja|forma parte|est[áa] en)|ha dejado la empresa|"
    r"niet (?:meer|langer) (?:werkzaam|in dienst|verbonden)|heeft (?:het bedrijf|ons) verlaten|"
    r"non (?:lavora|fa) pi[ùu]|ha lasciato (?:l'azienda|la societ[àa])|"
    r"n[ãa]o (?:trabalha|faz parte) mais|j[áa] n[ãa]o (?:trabalha|faz parte)|"
    r"arbetar inte (?:l[äa]ngre|kvar)|har slutat",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"not interested|no interest|not (?:a (?:good )?fit|for us|a priority|relevant|the right)|"
    r"no,? thanks?|no thank you|not at this time|not right now|(?:don't|do not) need|"
    r"(?:already|happy with) (?:use|using|have|work with)|please stop|go away|"
    r"kein interesse|nicht interessiert|kein bedarf|nein danke|"
    r"pas int[ée]ress[ée]|pas besoin|non merci|"
    r"no (?:estoy|estamos) interesad|no me interesa|no nos interesa|no gracias|"
    r"geen interesse|niet ge[ïi]nteresseerd|nee bedankt|"
    r"non (?:sono|siamo) interessat|non mi interessa|no grazie|"
    r"n[ãa]o tenho interesse|n[ãa]o (?:estou|estamos) interessad|"
    r"inte intresserad|nej tack",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\binterested\b|sounds (?:good|great|interesting)|let'?s (?:talk|chat|connect|meet|do it)|"
    r"happy to (?:chat|talk|meet|connect|learn)|tell me more|send (?:me|over) (?:more|some)|"
    r"book a (?:time|call|meeting|slot)|set up a (?:call|meeting|time)|\bcall me\b|"
    r"\bworks for me\b|\byes\b|\bsure\b|love to|would like to (?:learn|know|see|hear)|"
    r"interessiert|gerne|klingt gut|sehr gut|termin vereinbaren|"
    r"int[ée]ress[ée]|avec plaisir|volontiers|\boui\b|"
    r"interesad[oa]|me interesa|\bclaro\b|con gusto|"
    r"ge[ïi]nteresseerd|graag|klinkt goed|"
    r"interessat[oa]|volentieri|\bcerto\b|"
    r"interessad[oa]|com prazer|"
    r"intresserad|g[äa]rna",
    re.IGNORECASE,
)
_HEDGE = re.compile(r"\bnot (?:so |too |quite )?sure\b|\bunsure\b", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}")


def _content_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _FOOTER_LINE.search(line))


def unsubscribe_phrase(reply_text: str) -> str | None:
    """The phrase that asks us to stop, or None. A bare "STOP" counts only when
    it is the whole message (a word like "stop by" in a sentence does not)."""
    match = _UNSUBSCRIBE.search(_content_lines(reply_text))
    if match:
        return match.group(0)
    first_lines = [ln for ln in reply_text.splitlines() if ln.strip()]
    if len(first_lines) == 1 and _BARE_STOP.match(first_lines[0]):
        return first_lines[0].strip()
    return None


_OPT_OUT_SUBJECT = re.compile(
    r"^\W*(?:unsubscribe|opt[ -]?out|remove(?: me)?|list-unsubscribe|abmelden|austragen|d[ée]sinscri\w*"
    r"|d[ée]sabonne\w*|darse de baja|baja|cancelar suscripci[oó]n|disiscriviti|cancella iscrizione"
    r"|afmelden|uitschrijven|descadastrar|cancelar inscri[çc][ãa]o|avregistrera|配信停止|退订)\b",
    re.IGNORECASE,
)


def automated_opt_out(parsed: ParsedMessage, reply_text: str) -> str | None:
    """Evidence that this is a mail client's or privacy relay's unsubscribe button, else None.

    Those send a message whose subject is "unsubscribe" (or the subject the List-Unsubscribe
    mailto named) to our unsubscribe address, often with ``Auto-Submitted`` set and no body:
    it is a request to stop, never an auto-reply. A reply that merely starts "Re: unsubscribe"
    with text of its own is left to the reply checks, which read what the person wrote.
    """
    subject = parsed.subject.strip()
    if not _OPT_OUT_SUBJECT.match(subject):
        return None
    words = len(reply_text.split())
    if words > 30 and unsubscribe_phrase(reply_text) is None:
        return None
    return f"unsubscribe subject {subject[:60]!r} (List-Unsubscribe mailto or a client's unsubscribe button)"


def left_company_phrase(text: str) -> str | None:
    """The "no longer with the company" phrase, or None."""
    match = _LEFT_COMPANY.search(text[:5000])
    return match.group(0) if match else None


def new_contacts(text: str, *, exclude: Iterable[str], our_domains: frozenset[str]) -> list[str]:
    """Email addresses named in the text, minus ``exclude`` and our own domains.

    Used on "left the company" notices, which usually name a successor or a
    general inbox; the order of appearance is kept, duplicates dropped.
    """
    skip = {a.lower() for a in exclude if a}
    domains = {d.lower().lstrip("@") for d in our_domains}
    found: list[str] = []
    for addr in _EMAIL.findall(text[:20_000]):
        addr = addr.lower().rstrip(".")
        domain = addr.rsplit("@", 1)[-1]
        if addr in skip or addr in found:
            continue
        if any(domain == d or domain.endswith("." + d) for d in domains):
            continue
        found.append(addr)
    return found


def sentiment(reply_text: str) -> tuple[str, list[str]]:
    """'positive', 'negative' or 'neutral', plus the phrases that decided it."""
    negatives = [m.group(0) for m in _NEGATIVE.finditer(reply_text)]
    remainder = _HEDGE.sub(" ", _NEGATIVE.sub(" ", reply_text))
    positives = [m.group(0) for m in _POSITIVE.finditer(remainder)]
    if len(negatives) > len(positives):
        return "negative", negatives[:3]
    if positives and len(positives) > len(negatives):
        return "positive", positives[:3]
    return "neutral", (negatives + positives)[:3]
