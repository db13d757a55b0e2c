"""DMARC aggregate reports (RFC 7489 section 7.2 and appendix C) from the domain's ``rua`` mailbox.

A receiver (Google, Microsoft, Yahoo, ...) mails, once a day, an XML file saying how much
mail claiming to be from our domain it saw from each source IP, and whether SPF, DKIM and
their alignment passed. Stored per source IP, that shows who else sends as the domain and
whether our own mail authenticates.

Everything in a report is the sender's claim and is treated as hostile: the XML is parsed
with defusedxml (no entities, no DTDs, no external references), an attachment is read at
most ``MAX_ATTACHMENT`` bytes and decompresses to at most ``MAX_XML`` bytes however its
header describes itself (a zip bomb stops at the cap), and a report may hold at most
``MAX_RECORDS`` rows. A report that breaks any rule is refused whole with a ``DmarcError``
naming the field (the inbound path quarantines the message), so nothing is half-stored.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXml
from defusedxml import DefusedXmlException
from sqlmodel import Session, select

from sequencer.core.models import DmarcRecord, DmarcReport, InboundMessage

MAX_ATTACHMENT = 5 * 1024 * 1024  # bytes of one compressed attachment
MAX_XML = 20 * 1024 * 1024  # bytes of XML after decompression
MAX_RECORDS = 20_000  # rows in one report
MAX_TEXT = 255  # characters kept of any text field
MAX_COUNT = 10**9  # messages one row may claim
# "receiver!policy-domain!begin!end[!unique-id].xml.gz" (RFC 7489 section 7.2.1.1).
_FILENAME = re.compile(rb'filename\*?=["\']?[^"\'\r\n;]*![^"\'\r\n;]*!\d+!\d+', re.IGNORECASE)
_SUBJECT = re.compile(rb"^Subject:\s*Report\s+Domain:", re.IGNORECASE | re.MULTILINE)
_TYPES = {"application/zip", "application/x-zip-compressed", "application/gzip", "application/x-gzip",
          "application/xml", "text/xml", "application/octet-stream"}


class DmarcError(ValueError):
    """A report that cannot be read or breaks a bound; the message names the part or field."""


@dataclass(frozen=True)
class Row:
    source_ip: str
    count: int
    header_from: str
    disposition: str
    dkim: str
    spf: str
    dkim_result: str
    spf_result: str


@dataclass
class Aggregate:
    org_name: str
    report_id: str
    reporter_email: str
    domain: str
    policy: str
    begin_at: datetime
    end_at: datetime
    rows: list[Row] = field(default_factory=list)


def looks_like_report(raw: bytes) -> bool:
    """A cheap first look (no parsing): the RFC's subject or its attachment file name."""
    head = raw[:256 * 1024]
    return bool(_SUBJECT.search(head) or _FILENAME.search(raw[:MAX_ATTACHMENT]))


def from_message(raw: bytes) -> list[Aggregate]:
    """Every aggregate report attached to (or forming the body of) one message."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    found = []
    for index, part in enumerate(_parts(message)):
        payload = part.get_payload(decode=True) or b""
        if len(payload) > MAX_ATTACHMENT:
            raise DmarcError(f"attachment {index + 1}: {len(payload)} bytes, more than {MAX_ATTACHMENT}")
        xml = decompress(payload, f"attachment {index + 1} ({part.get_filename() or part.get_content_type()})")
        if xml is not None:
            found.append(parse(xml))
    return found


def _parts(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in message.walk() if not part.is_multipart()
            and (part.get_content_type() in _TYPES or (part.get_filename() or "").lower().endswith((".xml", ".gz",
                                                                                                  ".zip")))]


def decompress(payload: bytes, name: str) -> bytes | None:
    """The XML inside ``payload`` (zip, gzip or plain), at most ``MAX_XML`` bytes; None if it is none of them."""
    if payload.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise DmarcError(f"{name}: a zip with {len(members)} files (a report has one)")
                with archive.open(members[0]) as member:
                    return _capped(member.read(MAX_XML + 1), name)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
            raise DmarcError(f"{name}: unreadable zip: {exc}") from None
    if payload.startswith(b"\x1f\x8b"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(payload)) as stream:
                return _capped(stream.read(MAX_XML + 1), name)
        except (OSError, EOFError) as exc:
            raise DmarcError(f"{name}: unreadable gzip: {exc}") from None
    text = payload.lstrip()
    if text.startswith(b"<?xml") or text.startswith(b"<feedback"):
        return _capped(payload, name)
    return None


def _capped(data: bytes, name: str) -> bytes:
    if len(data) > MAX_XML:
        raise DmarcError(f"{name}: decompresses to more than {MAX_XML} bytes")
    return data


def parse(xml: bytes) -> Aggregate:
    """One ``<feedback>`` document; a DmarcError names the element that is missing or wrong."""
    try:
        root = SafeXml.fromstring(xml, forbid_dtd=True)
    except (SafeXml.ParseError, DefusedXmlException, ValueError) as exc:
        raise DmarcError(f"not well-formed or unsafe XML: {exc}") from None
    _strip_namespaces(root)
    if root.tag != "feedback":
        raise DmarcError(f"root element is <{root.tag}>, not <feedback>")
    meta, published = _child(root, "report_metadata"), _child(root, "policy_published")
    records = root.findall("record")
    if len(records) > MAX_RECORDS:
        raise DmarcError(f"{len(records)} records, more than {MAX_RECORDS}")
    report = Aggregate(
        org_name=_text(meta, "org_name", required=True), report_id=_text(meta, "report_id", required=True),
        reporter_email=_text(meta, "email"), domain=_text(published, "domain", required=True).lower(),
        policy=_text(published, "p"),
        begin_at=_epoch(meta, "date_range/begin"), end_at=_epoch(meta, "date_range/end"))
    for index, record in enumerate(records, 1):
        report.rows.append(_row(record, f"record {index}"))
    return report


def _row(record: Element, where: str) -> Row:
    row, auth = _child(record, "row", where), record.find("auth_results")
    source_ip = _text(row, "source_ip", where, required=True)
    try:
        source_ip = str(ipaddress.ip_address(source_ip))
    except ValueError:
        raise DmarcError(f"{where}: source_ip {source_ip!r} is not an IP address") from None
    count_text = _text(row, "count", where, required=True)
    if not count_text.isdigit() or int(count_text) > MAX_COUNT:
        raise DmarcError(f"{where}: count {count_text!r} is not a whole number up to {MAX_COUNT}")
    evaluated = _child(row, "policy_evaluated", where)
    return Row(
        source_ip=source_ip, count=int(count_text),
        header_from=_text(record, "identifiers/header_from", where).lower(),
        disposition=_text(evaluated, "disposition", where).lower(),
        dkim=_text(evaluated, "dkim", where).lower(), spf=_text(evaluated, "spf", where).lower(),
        dkim_result=_text(auth, "dkim/result", where).lower() if auth is not None else "",
        spf_result=_text(auth, "spf/result", where).lower() if auth is not None else "",
    )


def _strip_namespaces(root: Element) -> None:
    """The DMARCbis draft puts the elements in a namespace; RFC 7489 does not. Read both alike."""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.rpartition("}")[2]


def _child(parent: Element, tag: str, where: str = "") -> Element:
    found = parent.find(tag)
    if found is None:
        raise DmarcError(f"{where + ': ' if where else ''}<{tag}> is missing")
    return found


def _text(parent: Element, path: str, where: str = "", required: bool = False) -> str:
    found = parent.find(path)
    value = (found.text or "").strip() if found is not None else ""
    if required and not value:
        raise DmarcError(f"{where + ': ' if where else ''}<{path}> is missing or empty")
    return value[:MAX_TEXT]


def _epoch(parent: Element, path: str) -> datetime:
    value = _text(parent, path, "report_metadata", required=True)
    if not value.isdigit() or int(value) > 253402300799:  # 9999-12-31
        raise DmarcError(f"report_metadata: <{path}> {value!r} is not a Unix time")
    return datetime.fromtimestamp(int(value), UTC)


def store(session: Session, now: datetime, report: Aggregate, inbound_message_id: int | None = None) -> bool:
    """Store one report and its rows (caller commits); False when this reporter's report id is known."""
    known = session.exec(select(DmarcReport.id).where(DmarcReport.org_name == report.org_name,
                                                      DmarcReport.report_id == report.report_id)).first()
    if known is not None:
        return False
    row = DmarcReport(org_name=report.org_name, report_id=report.report_id, reporter_email=report.reporter_email,
                      domain=report.domain, policy=report.policy, begin_at=report.begin_at, end_at=report.end_at,
                      received_at=now, inbound_message_id=inbound_message_id)
    session.add(row)
    session.flush()
    session.add_all([DmarcRecord(dmarc_report_id=row.id, source_ip=r.source_ip, count=r.count,
                                 header_from=r.header_from, disposition=r.disposition, dkim=r.dkim, spf=r.spf,
                                 dkim_result=r.dkim_result, spf_result=r.spf_result) for r in report.rows])
    return True


def ingest(session: Session, now: datetime, key: str, raw: bytes, message_id: str, from_address: str,
           subject: str) -> tuple[InboundMessage, str] | None:
    """Store a report message once (``key`` as the inbound path gives it) and its reports; commit.

    None when nothing in it is a report (the message is handled like any other); a
    ``DmarcError``, before anything is written, when an attached report is unreadable.
    """
    reports = from_message(raw)
    if not reports:
        return None
    message = InboundMessage(dedupe_key=key, message_id=message_id, from_address=from_address,
                             subject=subject[:500], kind="dmarc_report", received_at=now,
                             detail={"reports": [f"{r.org_name} {r.report_id} ({r.domain})" for r in reports]})
    session.add(message)
    session.flush()
    stored = [r for r in reports if store(session, now, r, message.id)]
    session.commit()
    rows = sum(len(r.rows) for r in stored)
    if not stored:
        return message, "dmarc report: already stored"
    return message, f"dmarc report: {len(stored)} report(s), {rows} source row(s) for " + \
        ", ".join(sorted({r.domain for r in stored}))
