"""A DMARC aggregate report arriving at the rua mailbox is recognised by the inbound path and stored
per source IP; the same report twice is stored once; a broken one is quarantined with nothing half-stored."""

from __future__ import annotations

import gzip

import pytest
from sqlmodel import Session, select

from sequencer.core.clock import SimulatedClock
from sequencer.core.config import Settings
from sequencer.core.models import DmarcRecord, DmarcReport, InboundMessage
from sequencer.inbound.ingest import ingest_raw
from tests.unit.test_dmarc_parse import XML, report_mail

pytestmark = pytest.mark.peers

NAME = "google.com!outreach-acme.example!1764460800!1764547199.xml.gz"


@pytest.fixture
def config(db_url: str) -> Settings:
    return Settings(database_url=db_url, secret_key="test-secret-0123456789abcdefghij")


def test_a_report_is_stored_per_source_ip(session: Session, clock: SimulatedClock, config: Settings) -> None:
    result = ingest_raw(session, clock.now(), config, report_mail(gzip.compress(XML), NAME, "gzip"))

    assert result.action == "dmarc report: 1 report(s), 2 source row(s) for outreach-acme.example"
    assert result.message.kind == "dmarc_report"
    report = session.exec(select(DmarcReport)).one()
    rows = session.exec(select(DmarcRecord).order_by(DmarcRecord.source_ip)).all()
    assert (report.org_name, report.domain, report.inbound_message_id) == (
        "google.com", "outreach-acme.example", result.message.id)
    assert [(r.source_ip, r.count, r.dkim, r.spf) for r in rows] == [
        ("192.0.2.25", 120, "pass", "pass"), ("203.0.113.9", 7, "fail", "fail")]


def test_the_same_report_twice_is_stored_once(session: Session, clock: SimulatedClock, config: Settings) -> None:
    raw = report_mail(gzip.compress(XML), NAME, "gzip")
    ingest_raw(session, clock.now(), config, raw)
    again = ingest_raw(session, clock.now(), config, raw)  # the same message
    resent = ingest_raw(session, clock.now(), config, raw.replace(b"<dmarc-1@google.com>", b"<dmarc-2@google.com>"))

    assert again.duplicate
    assert resent.action == "dmarc report: already stored"
    assert len(session.exec(select(DmarcRecord)).all()) == 2


def test_a_broken_report_is_quarantined_and_nothing_is_half_stored(session: Session, clock: SimulatedClock,
                                                                   config: Settings) -> None:
    bad = XML.replace(b"<source_ip>203.0.113.9</source_ip>", b"<source_ip>nowhere</source_ip>")
    result = ingest_raw(session, clock.now(), config, report_mail(gzip.compress(bad), NAME, "gzip"))

    assert result.message.quarantined
    assert "record 2: source_ip 'nowhere' is not an IP address" in result.message.detail["reason"]
    assert session.exec(select(DmarcReport)).all() == []
    assert session.exec(select(DmarcRecord)).all() == []
    assert len(session.exec(select(InboundMessage)).all()) == 1
