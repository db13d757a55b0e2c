"""Bounces: recognise them and decide hard / soft / block.

The three outcomes drive different actions, so the distinction matters more than
the exact code:

* **hard** - the address does not exist (5.1.x, "user unknown"): suppress it.
* **soft** - temporary or the mailbox is full (4.x.x, 4.2.2/5.2.2 quota): retry later.
* **block** - the receiver refused *us* (5.7.x, spam, blocklists, DMARC): the
  address may be fine; it is a sending-domain health problem, not a suppression.

RFC 3464 DSNs are read per recipient. Everything else (qmail, old Exchange,
provider-specific text) is found with flufl.bounce plus our own patterns, because
flufl only answers *who* bounced, not *why*. ``classify_smtp_response`` applies
the same rules to refusals seen at SMTP time so both paths agree.
"""

from __future__ import annotations

import email.message
import re
from dataclasses import dataclass, field
from typing import Literal

from flufl.bounce import all_failures

from sequencer.inbound.original import original_message_id
from sequencer.inbound.parse import MAIL_ERRORS, ParsedMessage, decode_header_value

BounceType = Literal["hard", "soft", "block"]

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
_BASIC_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?=[ -]|$)", re.MULTILINE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'=-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}")

_BLOCK_WORDS = re.compile(
    r"block(?:ed|list|ing)?\b|blacklist|black list|spamhaus|spamcop|barracuda|sorbs|"
    r"\brbl\b|dnsbl|reputation|\bspam\b|unsolicited|dmarc|\bspf\b|dkim|"
    r"policy (?:reasons|violation|rejection)|rejected (?:for|due to) policy|"
    r"content rejected|message (?:rejected|refused) as spam|not authori[sz]ed to send|"
    r"unauthenticated|banned|denied by policy",
    re.IGNORECASE,
)
_SOFT_WORDS = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|exceed)|exceeded (?:storage|quota)|"
    r"insufficient (?:storage|system storage)|out of storage|mailbox size limit|"
    r"postfach (?:ist )?voll|bo[iî]te (?:aux lettres )?pleine|buz[oó]n lleno|"
    r"try again later|temporar(?:y|ily)|deferred|greylist|graylist|rate limit|"
    r"too many (?:connections|messages)|timed? ?out",
    re.IGNORECASE,
)
_HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)|"
    r"does ?n[o']t exist|recipient (?:address )?(?:not found|unknown|rejected)|"
    r"unknown (?:recipient|address|mailbox)|invalid (?:recipient|mailbox|address)|"
    r"mailbox (?:not found|unavailable|does not exist)|no mailbox here|"
    r"address (?:not found|rejected|unknown)|account (?:has been |is )?disabled|"
    r"not a valid (?:mailbox|recipient)|unrouteable address|user not found|"
    r"recipientnotfound|benutzer unbekannt|destinataire inconnu|usuario desconocido|"
    r"host or domain name not found|domain (?:not found|does not exist)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (?:has )?fail|"
    r"mail delivery (?:failed|failure|system)|returned mail|failure notice|"
    r"delivery failure|non.?delivery|could not be delivered|unzustellbar|"
    r"nicht zustellbar|non remis|no se puede entregar|onbestelbaar|"
    r"mancato recapito|delivery delayed|warning: message .* delayed",
    re.IGNORECASE,
)
_DAEMON_LOCALPARTS = frozenset(
    {"mailer-daemon", "mail-daemon", "postmaster", "mailerdaemon", "maildaemon"}
)


@dataclass(frozen=True)
class BounceVerdict:
    """Why a delivery failed, reduced to the action it calls for.

    ``status_code`` is the RFC 3463 enhanced code when one was given ("5.1.1"),
    else the basic SMTP reply code ("550") or None; ``reason`` is a short English
    explanation meant for evidence lists and "why" screens.
    """

    bounce_type: BounceType
    status_code: str | None
    reason: str
    # The refusal is about the message we sent (too big, a line too long, bad syntax, its
    # content), not the recipient: our fault, for a person to fix; no reason to suppress
    # or bounce the address. Set for send-time refusals and DSNs alike; bounce_type is then
    # "soft", which suppresses nothing for a reader that does not know this field.
    about_our_message: bool = False


@dataclass(frozen=True)
class BounceReport:
    """A recognised bounce: verdict, per-message details and why we think so."""

    verdict: BounceVerdict
    diagnostic: str
    recipients: list[str]
    original_message_id: str | None
    evidence: list[str] = field(default_factory=list)


def _text_verdict(text: str, code: str | None) -> BounceVerdict | None:
    if _BLOCK_WORDS.search(text):
        return BounceVerdict("block", code, "refused by policy or reputation")
    if _SOFT_WORDS.search(text):
        return BounceVerdict("soft", code, "mailbox full or temporary failure")
    if _HARD_WORDS.search(text):
        return BounceVerdict("hard", code, "recipient address does not exist")
    return None


def classify_status(status: str | None, text: str = "", *, permanent: bool = True) -> BounceVerdict:
    """Verdict from an enhanced status code plus the human-readable diagnostic.

    Specific codes decide on their own (5.1.1 is hard whatever the text says);
    generic ones (5.0.0, 5.5.x, none at all) are decided by the text: block words
    first, then quota/temporary, then "user unknown". A permanent failure with no
    recognisable reason is treated as hard, like most ESPs do; ``permanent=False``
    (e.g. a DSN ``Action: delayed``) makes that fallback soft instead.
    """
    match = _STATUS.search(status or "") or _STATUS.search(text)
    if match is None:
        found = _text_verdict(text, None)
        if found is not None:
            return found
        if permanent:
            return BounceVerdict("hard", None, "permanent failure, reason not recognised")
        return BounceVerdict("soft", None, "temporary failure")
    klass, subject, detail = (int(g) for g in match.groups())
    code = match.group(0)
    if klass == 4 or klass == 2:
        return BounceVerdict("soft", code, "temporary failure")
    ours = _about_our_message(550, f"{code} {text}") if klass == 5 else None
    if ours is not None:  # too big, syntax, content: the same verdict a refusal at send time gets
        return ours
    specific: dict[tuple[int, int], BounceVerdict] = {
        (1, 7): BounceVerdict("block", code, "our sender address was refused"),
        (1, 8): BounceVerdict("block", code, "our sender domain was refused"),
        (2, 1): BounceVerdict("hard", code, "mailbox disabled"),
        (2, 2): BounceVerdict("soft", code, "mailbox full"),
        (2, 3): BounceVerdict("soft", code, "message too large"),
        (3, 4): BounceVerdict("soft", code, "message too large"),
        (4, 1): BounceVerdict("hard", code, "recipient not accepted by destination"),
        (4, 4): BounceVerdict("hard", code, "destination domain cannot be routed"),
        (4, 6): BounceVerdict("soft", code, "routing loop"),
        (4, 7): BounceVerdict("soft", code, "delivery time expired"),
    }
    if (subject, detail) in specific:
        return specific[(subject, detail)]
    if subject == 1:
        return BounceVerdict("hard", code, "recipient address does not exist")
    if subject == 7:
        return BounceVerdict("block", code, "refused by security policy")
    found = _text_verdict(text, code)
    if found is not None:
        return found
    return BounceVerdict("hard", code, "permanent failure, reason not recognised")


def classify_smtp_response(code: int, message: str) -> BounceVerdict:
    """Classify a refusal our own SMTP client received, like a bounce would be.

    ``code`` is the basic reply code (421, 550...), ``message`` the server's text,
    which often starts with an enhanced code ("5.1.1 User unknown"). Raises
    ValueError for codes that are not refusals (below 400 or above 599).
    """
    if not 400 <= code <= 599:
        raise ValueError(f"SMTP reply code {code} is not a failure")
    text = message or ""
    ours = _about_our_message(code, text)
    if ours is not None:
        return ours
    if _STATUS.search(text):
        return classify_status(None, text, permanent=code >= 500)
    if code < 500:
        return BounceVerdict("soft", str(code), "temporary failure")
    found = _text_verdict(text, str(code))
    if found is not None:
        return found
    if code == 552:
        return BounceVerdict("soft", "552", "exceeded storage allocation")
    if code == 554:
        return BounceVerdict("block", "554", "transaction refused, no reason given")
    return BounceVerdict("hard", str(code), "permanent failure, reason not recognised")


_OUR_MESSAGE_WORDS = re.compile(
    r"line (?:is )?too long|too long line|line length|header (?:line )?too long|headers? too (?:large|big)|"
    r"message (?:is )?too (?:big|large)|(?:message )?size exceeds|exceeds? (?:the )?(?:fixed |maximum |message )+size|"
    r"message (?:length|size) (?:exceeds|limit)|too much mail data|"
    r"syntax error|bad syntax|malformed|bare (?:lf|cr|linefeed|carriage)|barelinefeed|"
    r"invalid (?:mime|header|message)|not (?:rfc ?)?(?:5322|2822|822)[ -]?compliant",
    re.IGNORECASE,
)
_OUR_STATUS = {  # RFC 3463 codes that are about the message itself, whatever the text says
    (3, 4): "message too big for the receiving system",
    (2, 3): "message longer than the receiver's limit",
}


def _about_our_message(code: int, text: str) -> BounceVerdict | None:
    """A permanent refusal of our message itself, not of the recipient; None otherwise.

    Read from the enhanced code when there is one: X.3.4 and X.2.3 (too big), X.5.x (a
    protocol or syntax error), X.6.x (the content or its encoding), X.0.0 with words that
    say so; else from the basic code: 500 and 501 (syntax), or any 5xx whose text says the
    message is too big, has a line too long or is malformed. Text naming the recipient or
    a policy block keeps its own verdict ("550 5.5.0 mailbox unavailable" is still hard).
    """
    if code < 500:
        return None
    match = _STATUS.search(text)
    status = match.group(0) if match else str(code)
    if _HARD_WORDS.search(text) or _BLOCK_WORDS.search(text):
        return None
    if match is not None:
        klass, subject, detail = (int(g) for g in match.groups())
        if klass != 5:
            return None
        if (subject, detail) in _OUR_STATUS:
            why = _OUR_STATUS[(subject, detail)]
        elif subject == 5:
            why = "protocol or syntax error in what we sent"
        elif subject == 6:
            why = "its content or encoding was not accepted"
        elif (subject, detail) == (0, 0) and _OUR_MESSAGE_WORDS.search(text):
            why = "the server says the message itself is at fault"
        else:
            return None
    elif code in (500, 501):
        why = "syntax error in what we sent"
    elif _OUR_MESSAGE_WORDS.search(text):
        why = "the server says the message itself is at fault"
    else:
        return None
    return BounceVerdict("soft", status, f"our message was refused: {why}", about_our_message=True)


def _strip_type(value: str) -> str:
    """'rfc822; a@b' -> 'a@b' (Final-Recipient and Diagnostic-Code carry a type)."""
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _dsn_blocks(message: email.message.Message) -> list[email.message.Message] | None:
    """Per-message and per-recipient field blocks of a delivery-status report."""
    if message.get_content_type() != "multipart/report":
        return None
    if (message.get_param("report-type") or "").lower() != "delivery-status":
        return None
    for part in message.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                return [p for p in payload if isinstance(p, email.message.Message)]
            text = payload if isinstance(payload, str) else ""
            return [email.message_from_string(b.strip()) for b in re.split(r"\n\s*\n", text)]
    return []


def _from_dsn(parsed: ParsedMessage, blocks: list[email.message.Message]) -> BounceReport | None:
    failed: list[tuple[str, BounceVerdict, str]] = []
    delayed: list[tuple[str, BounceVerdict, str]] = []
    evidence = ["multipart/report; report-type=delivery-status"]
    for block in blocks:
        action = decode_header_value(block.get("Action")).lower()
        if not action:
            continue
        recipient = _strip_type(
            decode_header_value(block.get("Final-Recipient") or block.get("Original-Recipient"))
        ).lower()
        status = decode_header_value(block.get("Status"))
        diagnostic = _strip_type(decode_header_value(block.get("Diagnostic-Code")))
        verdict = classify_status(status, diagnostic, permanent=action == "failed")
        evidence.append(f"DSN action={action} status={status or '?'}")
        if action == "failed":
            failed.append((recipient, verdict, diagnostic))
        elif action == "delayed":
            delayed.append((recipient, verdict, diagnostic))
    chosen = failed or delayed
    if not chosen:
        return None
    _, verdict, diagnostic = chosen[0]
    return BounceReport(
        verdict=verdict,
        diagnostic=diagnostic[:500],
        recipients=[r for r, _, _ in chosen if r],
        original_message_id=original_message_id(parsed.message, parsed.body_text),
        evidence=evidence,
    )


def is_daemon_sender(parsed: ParsedMessage) -> bool:
    """True for mailer-daemon / postmaster style senders (bounce and system mail)."""
    local = (parsed.from_address or "").split("@", 1)[0]
    return local in _DAEMON_LOCALPARTS or "mail delivery" in parsed.from_name.lower()


def _flufl_recipients(message: email.message.Message) -> tuple[list[str], bool]:
    """Recipients flufl.bounce finds, and whether any failure was permanent."""
    try:
        temporary, permanent = all_failures(message)
    except (*MAIL_ERRORS, IndexError, KeyError, UnicodeError):
        return [], False
    found = sorted({a.decode("utf-8", "replace").lower() for a in (*permanent, *temporary)})
    return found, bool(permanent)


def _diagnostic_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or len(stripped) > 400:
            continue
        if (
            _STATUS.search(stripped)
            or _BASIC_CODE.match(stripped)
            or _HARD_WORDS.search(stripped)
            or _SOFT_WORDS.search(stripped)
            or _BLOCK_WORDS.search(stripped)
        ):
            lines.append(stripped)
        if len(lines) >= 4:
            break
    return lines


def detect_bounce(parsed: ParsedMessage) -> BounceReport | None:
    """A BounceReport if this message is a bounce or delay notice, else None.

    A DSN whose recipients were all delivered or relayed is not a bounce (it is a
    delivery receipt) and gives None. Non-standard bounces must look like one
    (X-Failed-Recipients, or a daemon sender / empty Return-Path together with a
    bounce subject or an SMTP error) before their text is believed, so a human
    writing "user unknown" is never mistaken for a bounce.
    """
    blocks = _dsn_blocks(parsed.message)
    if blocks:
        report = _from_dsn(parsed, blocks)
        if report is not None:
            return report
        return None
    failed_header = parsed.headers.get("x-failed-recipients", "")
    daemon = is_daemon_sender(parsed) or parsed.return_path == ""
    subject_hit = bool(_BOUNCE_SUBJECT.search(parsed.subject))
    lines = _diagnostic_lines(parsed.body_text[:50_000])
    if not (failed_header or (daemon and (subject_hit or lines))):
        return None
    evidence = []
    if failed_header:
        evidence.append(f"X-Failed-Recipients: {failed_header[:100]}")
    if daemon:
        evidence.append(f"sender {parsed.from_address or '<>'} is a mail system")
    if subject_hit:
        evidence.append(f"bounce subject: {parsed.subject[:80]}")
    recipients, permanent = _flufl_recipients(parsed.message)
    if recipients:
        evidence.append("flufl.bounce found " + ", ".join(recipients[:3]))
    else:
        permanent = True
    recipients += [a.lower() for a in _EMAIL.findall(failed_header) if a.lower() not in recipients]
    if not recipients:
        own = {parsed.from_address, *parsed.to_addresses}
        recipients = [a.lower() for a in _EMAIL.findall("\n".join(lines)) if a.lower() not in own][
            :5
        ]
    diagnostic = " ".join(lines)[:500]
    delay = re.search(r"delay|will (?:retry|keep trying)", parsed.subject, re.IGNORECASE)
    verdict = classify_status(None, diagnostic, permanent=permanent and not delay)
    if verdict.status_code:
        evidence.append(f"status {verdict.status_code} in bounce text")
    return BounceReport(
        verdict=verdict,
        diagnostic=diagnostic,
        recipients=list(dict.fromkeys(recipients)),
        original_message_id=original_message_id(parsed.message, parsed.body_text),
        evidence=evidence,
    )
