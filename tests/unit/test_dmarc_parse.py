"""DMARC aggregate reports: RFC 7489 XML read safely, in gzip, zip or plain, with every bound held."""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from sequencer.deliverability import dmarc

pytestmark = pytest.mark.unit

XML = (Path(__file__).parents[1] / "fixtures" / "dmarc" / "google.xml").read_bytes()


def report_mail(payload: bytes, filename: str, subtype: str) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = "dmarc@outreach-acme.example"
    message["Subject"] = "Report domain: outreach-acme.example Submitter: google.com Report-ID: 114739"
    message["Message-ID"] = "<dmarc-1@google.com>"
    message.set_content("This is an aggregate report from google.com.")
    message.add_attachment(payload, maintype="application", subtype=subtype, filename=filename)
    return message.as_bytes()


def zipped(data: bytes, name: str = "google.com!outreach-acme.example!1764460800!1764547199.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def test_a_report_is_read_per_source_ip() -> None:
    report = dmarc.parse(XML)

    assert (report.org_name, report.report_id, report.domain, report.policy) == (
        "google.com", "11473914402915361718", "outreach-acme.example", "none")
    assert report.begin_at == datetime(2025, 11, 30, tzinfo=UTC)
    assert [(r.source_ip, r.count, r.dkim, r.spf, r.spf_result) for r in report.rows] == [
        ("192.0.2.25", 120, "pass", "pass", "pass"), ("203.0.113.9", 7, "fail", "fail", "softfail")]


@pytest.mark.parametrize(("payload", "filename", "subtype"), [
    (gzip.compress(XML), "google.com!outreach-acme.example!1764460800!1764547199.xml.gz", "gzip"),
    (zipped(XML), "google.com!outreach-acme.example!1764460800!1764547199.zip", "zip"),
    (XML, "report.xml", "xml"),
])
def test_gzip_zip_and_plain_attachments_are_recognised(payload: bytes, filename: str, subtype: str) -> None:
    raw = report_mail(payload, filename, subtype)

    assert dmarc.looks_like_report(raw)
    assert [len(r.rows) for r in dmarc.from_message(raw)] == [2]


def test_an_ordinary_reply_is_not_taken_for_a_report() -> None:
    message = EmailMessage()
    message["Subject"] = "Re: your note"
    message.set_content("Sounds good, call me Tuesday.")

    assert not dmarc.looks_like_report(message.as_bytes())


def test_a_zip_bomb_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dmarc, "MAX_XML", 1024 * 1024)
    bomb = zipped(b"<feedback>" + b" " * (8 * 1024 * 1024))  # 8 MB of spaces, about 8 kB zipped

    with pytest.raises(dmarc.DmarcError, match="decompresses to more than 1048576 bytes"):
        dmarc.decompress(bomb, "attachment 1")


def test_a_gzip_bomb_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dmarc, "MAX_XML", 1024 * 1024)

    with pytest.raises(dmarc.DmarcError, match="attachment 1: decompresses to more than"):
        dmarc.decompress(gzip.compress(b" " * (4 * 1024 * 1024)), "attachment 1")


def test_entities_are_refused() -> None:
    laughs = b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa">]><feedback>&a;</feedback>'

    with pytest.raises(dmarc.DmarcError, match="unsafe XML"):
        dmarc.parse(laughs)


def test_too_many_records_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dmarc, "MAX_RECORDS", 1)

    with pytest.raises(dmarc.DmarcError, match="2 records, more than 1"):
        dmarc.parse(XML)


@pytest.mark.parametrize(("old", "new", "message"), [
    (b"<source_ip>203.0.113.9</source_ip>", b"<source_ip>not-an-ip</source_ip>",
     "record 2: source_ip 'not-an-ip' is not an IP address"),
    (b"<count>7</count>", b"<count>-7</count>", "record 2: count '-7' is not a whole number"),
    (b"<org_name>google.com</org_name>", b"", "<org_name> is missing or empty"),
    (b"<begin>1764460800</begin>", b"<begin>yesterday</begin>", "<date_range/begin> 'yesterday' is not a Unix time"),
    (b"<feedback>", b"<report>", "not well-formed"),
])
def test_a_bad_field_is_named(old: bytes, new: bytes, message: str) -> None:
    with pytest.raises(dmarc.DmarcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dmarc.parse(XML.replace(old, new))


def test_a_namespaced_report_reads_the_same() -> None:
    spaced = XML.replace(b"<feedback>", b'<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">')

    assert len(dmarc.parse(spaced).rows) == 2
