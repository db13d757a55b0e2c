"""Why a delivery failed, in a fixed taxonomy, and the bounce type that follows from it.

Suppression is forever, so **hard** means the address is bad and nothing else: the mailbox
or the domain does not exist (a null MX included), it moved without forwarding, or the
domain says it takes no mail at all. Everything else is not the person's fault: **block**
when the receiver refused *us* (our IP, our domain, our content, our rate: it counts against
the sending mailbox), **soft** when it is temporary or about the mailbox's state (full,
suspended, the remote system broken). A reason the text does not tell is ``unknown`` and
soft: a wrong "hard" suppresses a good address for good, a wrong "soft" costs a retry.

A reason is read from the RFC 3463 enhanced status code when the code is specific, else from
the server's words (many MTAs send 5.0.0 or no code at all), in the order of ``_PATTERNS``:
the more specific readings first ("mailbox unavailable or access denied" is a suspended
account, not an unknown user). The patterns are ours; the phrases are those the MTAs and
mailbox providers document or send (Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Yahoo,
iCloud, ...), compared with the reason classes sisimai uses for the same texts.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from sequencer.rules.book import BOUNCE_REASONS  # the names and types stop rules accept (bounce.mailbox_full)

BounceType = Literal["hard", "soft", "block"]


@dataclass(frozen=True)
class Reason:
    """One class of the taxonomy: its bounce type, whether our message is at fault, what it means."""

    name: str
    bounce_type: BounceType
    meaning: str
    about_our_message: bool = False


def _reason(name: str, meaning: str, about_our_message: bool = False) -> Reason:
    return Reason(name, BOUNCE_REASONS[name], meaning, about_our_message)  # type: ignore[arg-type]


REASONS: dict[str, Reason] = {
    r.name: r
    for r in (
        _reason("user_unknown", "the mailbox does not exist"),
        _reason("host_unknown", "the domain or host does not exist, or has a null MX"),
        _reason("moved", "the mailbox moved and mail is not forwarded"),
        _reason("not_accepting", "the recipient's domain accepts no mail at all"),
        _reason("suspended", "the account is suspended, disabled or inactive (it may come back)"),
        _reason("mailbox_full", "the mailbox is over its quota"),
        _reason("message_too_big", "our message is larger than the receiver takes", True),
        _reason("syntax_error", "what we sent broke the protocol or the message format", True),
        _reason("content_filtered", "the receiver's filter refused our content"),
        _reason("spam_detected", "the receiver judged our message to be spam"),
        _reason("virus", "the receiver found (or thought it found) malware in our message"),
        _reason("policy_blocked", "refused by policy: a blocklist, our reputation, rDNS, 'rejected'"),
        _reason("auth_failure", "SPF, DKIM or DMARC failed, or our relay refused our login"),
        _reason("rate_limited", "we sent too much or too fast (rate limit, too many connections)"),
        _reason("relay_denied", "the server does not relay for us or that domain"),
        _reason("expired", "the message waited in a queue until it expired"),
        _reason("delayed", "a delay notice: the sending server is still trying"),
        _reason("network_error", "the receiver could not be reached (DNS, connection, timeout)"),
        _reason("system_error", "the receiving system failed or is unavailable"),
        _reason("unknown", "a failure whose reason neither the code nor the text tells"),
    )
}
HARD_REASONS = frozenset(name for name, r in REASONS.items() if r.bounce_type == "hard")


def _words(*phrases: str) -> re.Pattern[str]:
    return re.compile("|".join(phrases), re.IGNORECASE)


# (reason, pattern) in the order they are tried; the first that matches decides.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("user_unknown", _words(  # unambiguous before the policy words: "Recipient address rejected: Access denied"
        r"recipient address rejected: (?:access denied|user unknown|unknown user|invalid user|userunknown)"
        r"|\buser unknown\b|\bno such (?:user|mailbox)\b|recipientnotfound|recipient not found by smtp address",
    )),
    ("moved", _words(
        r"has moved|mailbox (?:has )?moved|moved (?:permanently|to a new)|no longer (?:at|valid at) this address"
        r"(?!.*\bactive\b)|address (?:has )?changed|user has moved|forwarding address|not (?:being )?forwarded",
    )),
    ("not_accepting", _words(
        r"does not accept (?:e-?)?mail|doesn't accept (?:e-?)?mail|accepts no mail|not accepting (?:any )?mail"
        r"|no mx record found|mail receiving disabled",
    )),
    ("suspended", _words(
        r"suspend|disabled|deactivated|inactive|not active|\blocked\b|frozen|terminated|discontinued|archived recipient"
        r"|mailbox unavailable or access denied|gesperrt|deaktiviert|d[ée]sactiv|bloqu[ée]e?\b.{0,20}compte"
        r"|compte (?:bloqu|suspendu)|cuenta (?:suspendida|deshabilitada|inactiva)|account (?:is )?closed"
        r"|停止|無効",
    )),
    ("mailbox_full", _words(
        r"mailbox (?:is )?full|full mailbox|mailbox.{0,20}\bfull\b|over ?quota|quota (?:exceeded|exceed)"
        r"|exceeded (?:storage|(?:the |its |his |her )?quota)|exceeds? (?:allowed size|(?:its |the )?quota)"
        r"|storage allocation|insufficient (?:disk|storage|system storage)"
        r"|out of storage|(?:disk|mailbox|maildir) quota"
        r"|mailbox size limit|no space left|has too many messages|space has been used up"
        r"|would exceed (?:the )?(?:maximum allowed storage|quota)"
        r"|postfach (?:ist )?(?:voll|überfüllt)|speicherplatz|bo[iî]te.{0,40}pleine"
        r"|quota d[ée]pass|buz[oó]n (?:de correo )?(?:est[aá] )?lleno|casella (?:di posta )?(?:piena|è piena)"
        r"|caixa (?:postal )?(?:de correio )?(?:cheia|lotada)|mailbox (?:is )?vol\b|容量|いっぱい",
    )),
    ("message_too_big", _words(
        r"message (?:is )?too (?:big|large)|too (?:big|large) (?:for|message)|(?:message )?size exceeds"
        r"|exceeds? (?:the )?(?:fixed |maximum |message )+size|message (?:length|size) (?:exceeds|limit)"
        r"|size limit|too much mail data|message file too big|nachricht (?:ist )?zu gro",
    )),
    ("virus", _words(r"virus|malware|infected|trojan|worm\b|phishing|malicious|eicar")),
    ("spam_detected", _words(
        r"\bspam\b(?! ?(?:hau|cop))|spam (?:message|content|detected)|unsolicited|bulk mail|junk mail|"
        r"looks like (?:spam|junk)|spammy|message (?:rejected|refused) as spam|spam score|high probability of spam"
        r"|mail flood|considered spam|identified as spam|als spam|comme spam|como spam|come spam",
    )),
    ("auth_failure", _words(
        r"\bdmarc\b|\bspf\b|\bdkim\b|sender policy framework|domainkeys|not authenticated|unauthenticated"
        r"|authentication (?:required|failed|failure|credentials)|auth(?:entication)? (?:is )?required"
        r"|must (?:be )?authenticate|arc (?:validation )?fail",
    )),
    ("rate_limited", _words(
        r"rate limit|rate-limit|ratelimit|too many (?:connections|messages|emails|recipients|concurrent|sessions"
        r"|mails|requests|errors)|too fast|sending rate|throttl|unexpected volume|try again (?:in|after) \d"
        r"|temporarily deferred|exceeded (?:the )?(?:sending|message|connection|daily|hourly) (?:limit|rate)"
        r"|connection limit|message limit|daily (?:sending )?(?:quota|limit)|volume limit|\[TS0[1-4]\]",
    )),
    ("relay_denied", _words(
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)"
        r"|unable to relay|not permitted to relay"
        r"|we do not relay|does not relay|no relaying|not a gateway|not (?:in|on) my list of allowed rcpthosts"
        r"|isn't in my list of (?:allowed )?rcpthosts|relay(?:ing)? refused|relais (?:refus|interdit)",
    )),
    ("policy_blocked", _words(
        r"block(?:ed|list|ing)?\b|blacklist|black list|denylist|spamhaus|spamcop|barracuda|sorbs|\brbl\b|dnsbl"
        r"|\bbl\.|reputation|policy|polic[yi]es|banned|prohibited|not allowed to send|not authori[sz]ed"
        r"|reverse dns|\bptr\b|rdns|no (?:reverse|ptr)|helo|ehlo|dynamic ip|residential|client host rejected"
        r"|sender (?:address )?(?:rejected|refused|denied|blacklisted)|sender verify failed|access denied"
        r"|administrative prohibition|not accepted from your|listed (?:at|on|in)|envelope blocked|\[PH01\]",
    )),
    ("host_unknown", _words(
        r"host (?:or domain name )?not found|domain (?:not found|does not exist|doesn't exist|name not found|unknown)"
        r"|unknown (?:host|domain)|host unknown|no such (?:domain|host)|unrouteable|unroutable"
        r"|name or service not known"
        r"|(?:domain|host) (?:is )?(?:not reachable|unreachable)|nxdomain|name service error|could not be resolved"
        r"|null ?mx|recipient domain must exist|domaine inconnu|dominio (?:desconocido|inexistente|sconosciuto)"
        r"|domain(?:e)? existiert nicht",
    )),
    ("user_unknown", _words(
        r"user unknown|unknown (?:user|recipient|address|mailbox|local ?part|e-?mail address)|no such (?:user|mailbox"
        r"|recipient|address|person|account)|does ?n[o']t exist|not exist|does(?: not|n't) have an? .{0,30}account"
        r"|recipient (?:address )?(?:not found|unknown|rejected: (?:user|invalid|access denied|unknown)|invalid"
        r"|is not accepted|is not local)|invalid (?:recipient|mailbox|address|user)|mailbox (?:not found|unavailable"
        r"|is unavailable|invalid|not present)|no mailbox|address (?:not found|unknown|invalid|rejected\b)"
        r"|not a (?:valid|known) (?:mailbox|recipient|user)|is not a known user|user not (?:found|known|exist)"
        r"|(?:e-?mail )?account (?:that you tried to reach )?does not exist|could(?:n't| not) be found"
        r"|recipientnotfound|recipient not found|no one at this address|badrcptto|not listed in (?:domino|the)"
        r"|no longer (?:valid|available)|isn't a valid|is not a valid|address not present|not in (?:the )?directory"
        r"|benutzer (?:ist )?unbekannt|unbekannter (?:benutzer|empf)|empf[äa]nger (?:ist )?unbekannt"
        r"|adresse (?:wurde )?nicht gefunden|existiert nicht|destinataire inconnu|utilisateur inconnu"
        r"|adresse (?:e-?mail )?(?:inconnue|invalide|inexistante)|n'existe pas|usuario (?:desconocido|inexistente)"
        r"|direcci[oó]n (?:no existe|inexistente|desconocida)|no existe|utente (?:sconosciuto|inesistente)"
        r"|indirizzo (?:inesistente|sconosciuto|non valido)|non esiste|usu[aá]rio (?:desconhecido|inexistente)"
        r"|n[ãa]o existe|endere[çc]o (?:inexistente|desconhecido)|onbekende (?:gebruiker|ontvanger)|bestaat niet"
        r"|宛先不明|存在しません|ユーザーが(?:存在|見つかり)|不明なユーザー|用户不存在",
    )),
    ("expired", _words(
        r"expired|retry time|retry timeout|too long in (?:the )?queue|queue time|could not be delivered within"
        r"|gave up|giving up|delivery time|in queue for|max(?:imum)? (?:queue )?(?:time|age)|timeout exceeded",
    )),
    ("network_error", _words(
        r"connection (?:refused|timed out|reset|dropped|lost|closed)|timed? ?out|no route to host"
        r"|network is unreachable"
        r"|could not connect|unable to connect|can't connect|dns (?:error|failure|lookup)|servfail|lost connection"
        r"|\btls\b|starttls|\bssl\b|handshake",
    )),
    ("system_error", _words(
        r"system (?:error|failure|not available)|temporar(?:y|ily)|try (?:again )?later|local error|internal error"
        r"|server error|service (?:not )?(?:un)?available|unavailable|not available|resources|overloaded|loop"
        r"|misconfigur|deferred|greylist|graylist|mail system|out of memory|i/o error|mailer error",
    )),
    ("content_filtered", _words(
        r"content|filter|attachment|not accepted for delivery|\burl\b|forbidden"
        r"|inhalt|contenu|contenido",
    )),
    ("syntax_error", _words(
        r"syntax error|bad syntax|syntax|malformed|bare (?:lf|cr|linefeed|carriage)|line (?:is )?too long"
        r"|invalid (?:mime|header|message)|not (?:rfc ?)?(?:5322|2822|822)[ -]?compliant|command unrecognized",
    )),
]
_REFUSED = _words(r"rejected|refused|denied|not accepted|unacceptable|abgelehnt|refus[ée]|rechaz|rifiutat|recusad")

# RFC 3463 (and the RFC 5248 registry) codes specific enough to decide alone; (subject, detail) -> reason.
_BY_CODE: dict[tuple[int, int], str] = {
    (1, 1): "user_unknown", (1, 2): "host_unknown", (1, 3): "user_unknown", (1, 4): "user_unknown",
    (1, 6): "moved", (1, 7): "policy_blocked", (1, 8): "policy_blocked", (1, 10): "host_unknown",
    (2, 1): "suspended", (2, 2): "mailbox_full", (2, 3): "message_too_big", (2, 4): "system_error",
    (3, 1): "system_error", (3, 2): "not_accepting", (3, 3): "system_error", (3, 4): "message_too_big",
    (3, 5): "system_error", (4, 1): "network_error", (4, 2): "network_error", (4, 3): "network_error",
    (4, 4): "host_unknown", (4, 5): "rate_limited", (4, 6): "system_error", (4, 7): "expired",
    (7, 8): "auth_failure", (7, 9): "auth_failure", (7, 13): "suspended", (7, 20): "auth_failure",
    (7, 21): "auth_failure", (7, 22): "auth_failure", (7, 23): "auth_failure", (7, 24): "auth_failure",
    (7, 25): "policy_blocked", (7, 26): "auth_failure", (7, 27): "policy_blocked", (7, 28): "rate_limited",
    (7, 29): "auth_failure",
}
# Codes whose text is read first: the same code is sent for very different reasons.
_TEXT_FIRST = frozenset({(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (0, 0), (7, 0), (7, 1), (4, 1), (4, 4), (1, 1),
                         (3, 2), (4, 7), (1, 10)})
_SUBJECT_DEFAULT = {0: "unknown", 1: "unknown", 2: "unknown", 3: "system_error", 4: "network_error",
                    5: "syntax_error", 6: "content_filtered", 7: "policy_blocked"}
# Text readings that must not overrule a code of another class: a 5.7.x that says "user unknown" is a policy refusal.
_TEXT_MAY_OVERRULE: dict[int, frozenset[str]] = {
    1: frozenset({"user_unknown", "moved", "suspended", "not_accepting", "host_unknown", "relay_denied"}),
    4: frozenset({"user_unknown", "host_unknown", "network_error", "expired", "rate_limited", "policy_blocked",
                  "auth_failure", "system_error"}),
    7: frozenset(REASONS) - HARD_REASONS,
}


# Any pattern at all, in one pass: most lines a bounce is read for say nothing, and then one search decides.
_ANY = re.compile("|".join(f"(?:{p.pattern})" for _, p in _PATTERNS) + f"|(?:{_REFUSED.pattern})", re.IGNORECASE)


@functools.lru_cache(maxsize=512)  # pure; a diagnostic is read by the message check, then the code check
def reason_from_text(text: str) -> str | None:
    """The reason the server's words give, or None when they give none."""
    if not text or _ANY.search(text) is None:
        return None
    for name, pattern in _PATTERNS:
        if pattern.search(text):
            return name
    if _REFUSED.search(text):
        return "policy_blocked"  # "rejected" and nothing else: a refusal of us, not proof the address is bad
    return None


def reason_from_code(klass: int, subject: int, detail: int, text: str) -> str:
    """The reason for an enhanced status code, with the text read where the code alone is too vague."""
    specific = _BY_CODE.get((subject, detail))
    if specific is not None and (subject, detail) not in _TEXT_FIRST:
        return _temporary(klass, specific)
    found = reason_from_text(text)
    if found is not None:
        allowed = _TEXT_MAY_OVERRULE.get(subject)
        if specific is not None and allowed is not None and found not in allowed:
            found = None  # 5.1.1 that says "blocked" stays user_unknown; 5.7.1 saying "no such user" is policy
        elif specific is None and subject == 7 and found in HARD_REASONS:
            found = "policy_blocked"
    return _temporary(klass, found or specific or _SUBJECT_DEFAULT.get(subject, "unknown"))


def _temporary(klass: int, reason: str) -> str:
    """A 4.x.x never proves an address bad: a hard reading becomes what a passing failure would be."""
    if klass == 5 or REASONS[reason].bounce_type != "hard":
        return reason
    return "network_error" if reason == "host_unknown" else "system_error"

