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

from flufl.bounce import all_failures

from sequencer.inbound.original import original_message_id
from sequencer.inbound.parse import MAIL_ERRORS, ParsedMessage, decode_header_value
from sequencer.inbound.reasons import REASONS, BounceType, reason_from_code, reason_from_text
from sequencer.inbound.ses import SesNotification, notification, subtype_reading

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
_BASIC_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?=[ -]|$)", re.MULTILINE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'=-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}")

_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (?:has )?fail|"
    r"mail delivery (?:failed|failure|system)|returned mail|failure notice|"
    r"delivery failure|non.?delivery|could not be delivered|unzustellbar|"
    r"nicht zustellbar|non remis|no se puede entregar|onbestelbaar|"
    r"mancato recapito|delivery delayed|warning: message .* delayed",
    re.IGNORECASE,
)
_DELAY = re.compile(r"delay|will (?:retry|keep trying)|verz[öo]gert|retard|retrasad|ritardat|atrasad|vertraagd",
                    re.IGNORECASE)
_DELAY_TEXT = re.compile(r"will (?:continue to )?(?:retry|keep trying|try again)|still trying|not yet been delivered"
                         r"|delivery (?:to the following recipients? )?(?:has been|is) delayed|no action is required",
                         re.IGNORECASE)
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
    # "soft" (the reason message_too_big, syntax_error or content_filtered), which suppresses nothing.
    about_our_message: bool = False
    # the taxonomy's reason (sequencer.inbound.reasons): user_unknown, mailbox_full, policy_blocked, ...
    bounce_reason: str = "unknown"


@dataclass(frozen=True)
class BounceReport:
    """A recognised bounce: verdict, per-message details and why we think so."""

    verdict: BounceVerdict
    diagnostic: str
    recipients: list[str]
    original_message_id: str | None
    evidence: list[str] = field(default_factory=list)


def reason_verdict(reason: str, code: str | None, why: str | None = None) -> BounceVerdict:
    """The verdict a reason of the taxonomy calls for; ``why`` overrides its generic meaning."""
    known = REASONS[reason]
    return BounceVerdict(known.bounce_type, code, why or known.meaning, bounce_reason=reason)


def classify_status(status: str | None, text: str = "", *, permanent: bool = True) -> BounceVerdict:
    """Verdict from an enhanced status code plus the human-readable diagnostic.

    Specific codes decide on their own (5.1.1 is user_unknown whatever the text says, 5.2.2
    mailbox_full); vague ones (5.0.0, 5.7.1, 5.1.0, none at all) are read from the text
    (``sequencer.inbound.reasons``). A failure nothing explains is ``unknown``, which is soft:
    it never suppresses. ``permanent=False`` (a 4xx, a DSN ``Action: delayed``) never gives hard.
    """
    match = _STATUS.search(status or "") or _STATUS.search(text)
    if match is None:
        reason = reason_from_text(text) or "unknown"
        if not permanent and REASONS[reason].bounce_type == "hard":
            reason = "network_error" if reason == "host_unknown" else "system_error"
        return reason_verdict(reason, None)
    klass, subject, detail = (int(g) for g in match.groups())
    code = match.group(0)
    if klass == 2:
        return reason_verdict("unknown", code, "a success code in a failure report")
    if klass == 5 and permanent:
        ours = _about_our_message(550, f"{code} {text}")
        if ours is not None:  # too big, syntax, content: the same verdict a refusal at send time gets
            return ours
    return reason_verdict(reason_from_code(klass if permanent else 4, subject, detail, text), code)


_BASIC_REASONS = {421: "system_error", 450: "system_error", 451: "system_error", 452: "mailbox_full",
                  521: "not_accepting", 552: "mailbox_full", 554: "policy_blocked", 556: "not_accepting"}


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
    if code in (521, 556):  # RFC 7504: the domain takes no mail at all
        return reason_verdict("not_accepting", str(code))
    found = reason_from_text(text)
    if found is None:
        found = _BASIC_REASONS.get(code, "unknown")
    if code < 500 and REASONS[found].bounce_type == "hard":
        found = "network_error" if found == "host_unknown" else "system_error"
    return reason_verdict(found, str(code))


_OUR_MESSAGE_WORDS = re.compile(
    r"line (?:is )?too long|too long line|line length|header (?:line )?too long|headers? too (?:large|big)|"
    r"message (?:is )?too (?:big|large)|(?:message )?size exceeds|exceeds? (?:the )?(?:fixed |maximum |message )+size|"
    r"message (?:length|size) (?:exceeds|limit)|too much mail data|"
    r"syntax error|bad syntax|malformed|bare (?:lf|cr|linefeed|carriage)|barelinefeed|"
    r"invalid (?:mime|header|message)|not (?:rfc ?)?(?:5322|2822|822)[ -]?compliant",
    re.IGNORECASE,
)
_TOO_BIG = re.compile(r"too (?:big|large)|size|too much mail data", re.IGNORECASE)
_OUR_STATUS = {  # RFC 3463 codes that are about the message itself, whatever the text says
    (3, 4): "message too big for the receiving system",
    (2, 3): "message longer than the receiver's limit",
}
# Readings of the text that name the recipient or a refusal of us: those keep their own verdict.
_NOT_OURS = frozenset(REASONS) - {"message_too_big", "syntax_error", "content_filtered", "unknown", "system_error"}


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
    if reason_from_text(text) in _NOT_OURS and not _OUR_MESSAGE_WORDS.search(text):
        return None
    reason = "syntax_error"
    if match is not None:
        klass, subject, detail = (int(g) for g in match.groups())
        if klass != 5:
            return None
        if (subject, detail) in _OUR_STATUS:
            why, reason = _OUR_STATUS[(subject, detail)], "message_too_big"
        elif subject == 5:
            why = "protocol or syntax error in what we sent"
        elif subject == 6:
            why, reason = "its content or encoding was not accepted", "content_filtered"
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
    if reason == "syntax_error" and _TOO_BIG.search(text) and not _NAMES_SYNTAX.search(text):
        reason = "message_too_big"
    # soft whatever the reason: a reader that ignores about_our_message suppresses and counts nothing
    return BounceVerdict("soft", status, f"our message was refused: {why}",
                         about_our_message=True, bounce_reason=reason)


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


_VAGUE_STATUS = re.compile(r"^\s*(?:[45]\.0\.0|[45]\.\d\.0)?\s*$")


def _from_dsn(parsed: ParsedMessage, blocks: list[email.message.Message]) -> BounceReport | None:
    failed: list[tuple[str, BounceVerdict, str]] = []
    delayed: list[tuple[str, BounceVerdict, str]] = []
    evidence = ["multipart/report; report-type=delivery-status"]
    text_lines: list[str] | None = None  # read from the text part once, for whichever blocks need it
    for block in blocks:
        action = decode_header_value(block.get("Action")).lower()
        if not action:
            continue
        recipient = _strip_type(
            decode_header_value(block.get("Final-Recipient") or block.get("Original-Recipient"))
        ).lower()
        status = decode_header_value(block.get("Status"))
        diagnostic = _strip_type(decode_header_value(block.get("Diagnostic-Code")))
        if not diagnostic or _VAGUE_STATUS.match(status):  # some MTAs state the reason only in the text part
            if text_lines is None:
                text_lines = _diagnostic_lines(parsed.body_text[:50_000])
            diagnostic = " ".join([diagnostic, *text_lines]).strip()
        if action == "delayed":
            verdict = reason_verdict("delayed", status or None)
        else:
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


# Where a non-standard bounce starts quoting the returned message: our own text is below it.
_RETURNED_COPY = re.compile(
    r"^\s*(?:-{2,}\s*)?(?:below this line is a copy of the message|this is a copy of the message"
    r"|original message (?:follows|headers? follows?)|the (?:original message|header of the original message)"
    r"|\*+ ?original message|original (?:message|headers)\s*:|returned message|unsent message below"
    r"|content-type: message/rfc822|-{2,} ?(?:original|ursprüngliche) (?:message|nachricht))",
    re.IGNORECASE | re.MULTILINE,
)
_WRAPPED = re.compile(r"\n[ \t]+(?=\S)")
_NAMES_SYNTAX = re.compile(r"syntax|malformed|bare", re.IGNORECASE)
_TELLING = frozenset(REASONS) - {"content_filtered", "system_error", "network_error", "syntax_error", "unknown"}


def report_text(text: str) -> str:
    """The bounce's own words: up to the copy of our message it returns, wrapped lines joined."""
    cut = _RETURNED_COPY.search(text)
    text = text[: cut.start()] if cut else text
    return _WRAPPED.sub(" ", text)


def _diagnostic_lines(text: str) -> list[str]:
    """The lines of a bounce that say why: an SMTP status first, else a telling phrase (at most four)."""
    coded, telling = [], []
    for line in report_text(text).splitlines():
        stripped = line.strip()
        if not stripped or len(stripped) > 600:
            continue
        if _STATUS.search(stripped) or _BASIC_CODE.search(stripped):
            coded.append(stripped)
        elif reason_from_text(stripped) in _TELLING:
            telling.append(stripped)
    return (coded + telling)[:4]


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
        return _from_dsn(parsed, blocks)
    ses = notification(parsed) if parsed.message.get_content_maintype() == "text" else None
    if ses is not None:
        return _from_ses(ses) if ses.kind == "Bounce" else None
    failed_header = parsed.headers.get("x-failed-recipients", "")
    daemon = is_daemon_sender(parsed) or parsed.return_path == ""
    if not (failed_header or daemon):
        return None  # before reading the text: most mail is not from a mail system
    subject_hit = bool(_BOUNCE_SUBJECT.search(parsed.subject))
    lines = _diagnostic_lines(parsed.body_text[:50_000])
    if not (failed_header or subject_hit or lines):
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
    delay = _DELAY.search(parsed.subject) or _DELAY_TEXT.search(parsed.body_text[:5000])
    if delay:
        code = _STATUS.search(diagnostic) or _BASIC_CODE.search(diagnostic)
        verdict = reason_verdict("delayed", code.group(0) if code else None)
    else:
        verdict = classify_status(None, diagnostic, permanent=permanent)
        basic = _BASIC_CODE.search(diagnostic) if verdict.status_code is None else None
        if basic is not None:  # "said: 550 No such user": the basic reply code tells what the words may not
            verdict = classify_smtp_response(int(basic.group(1)), diagnostic)
    if verdict.status_code:
        evidence.append(f"status {verdict.status_code} in bounce text")
    return BounceReport(
        verdict=verdict,
        diagnostic=diagnostic,
        recipients=list(dict.fromkeys(recipients)),
        original_message_id=original_message_id(parsed.message, parsed.body_text),
        evidence=evidence,
    )


def _from_ses(ses: SesNotification) -> BounceReport:
    """An SES bounce notification: the subtype where it is specific, else each recipient's status and words."""
    bounce_type, subtype = str(ses.body.get("bounceType", "")), str(ses.body.get("bounceSubType", ""))
    first = ses.recipients[0] if ses.recipients else {}
    status = str(first.get("status") or "")[:40]
    diagnostic = str(first.get("diagnosticCode") or "")[:500]
    text = _strip_type(diagnostic) if diagnostic.lower().startswith("smtp;") else diagnostic
    reading = subtype_reading(bounce_type, subtype)
    if reading is not None:
        reason, why, ours = reading
        found = _STATUS.search(status) or _STATUS.search(text)
        code = found.group(0) if found else None
        verdict = (BounceVerdict("soft", code, why, about_our_message=True, bounce_reason=reason) if ours
                   else reason_verdict(reason, code, why))
    elif status or text:
        verdict = classify_status(status or None, text, permanent=bounce_type == "Permanent")
    else:
        verdict = reason_verdict("system_error" if bounce_type == "Transient" else "unknown", None)
    return BounceReport(
        verdict=verdict,
        diagnostic=text or f"SES {bounce_type}/{subtype}",
        recipients=ses.addresses,
        original_message_id=ses.original_message_id,
        evidence=[f"Amazon SES {ses.kind} notification: bounceType={bounce_type[:20]} bounceSubType={subtype[:40]}"],
    )
