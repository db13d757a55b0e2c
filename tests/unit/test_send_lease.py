"""The send lease fits the batch: its largest mailbox share and the SMTP timeout bound it."""

from __future__ import annotations

import math
import time
from datetime import timedelta

from channels.email import NotAttempted, SmtpSender
from channels.message import OutgoingEmail
from sequencer.core.config import Settings
from sequencer.core.models import Mailbox
from sequencer.engine.send_batch import MESSAGE_WAITS, RECORD_MARGIN, SEND_PACE, send_lease


def test_the_lease_grows_with_the_largest_mailbox_share_and_the_timeout():
    short = Settings(smtp_timeout=5)
    lease_one, budget_one = send_lease(short, 1)
    lease_many, budget_many = send_lease(short, 200)

    assert lease_one == timedelta(seconds=math.ceil(SEND_PACE + MESSAGE_WAITS * 5 + RECORD_MARGIN))
    assert (budget_one, budget_many) == (SEND_PACE, 200 * SEND_PACE)
    assert lease_many - lease_one == timedelta(seconds=math.ceil(200 * SEND_PACE) - math.ceil(SEND_PACE))
    assert send_lease(Settings(smtp_timeout=30), 1)[0] - lease_one == timedelta(seconds=MESSAGE_WAITS * 25)
    assert lease_one < timedelta(minutes=10)  # the old fixed lease


def test_a_set_lease_replaces_the_fitted_one_but_never_leaves_less_than_one_message():
    assert send_lease(Settings(smtp_timeout=5, send_lease_seconds=600), 200)[0] == timedelta(seconds=600)
    lease, budget = send_lease(Settings(smtp_timeout=5, send_lease_seconds=1), 200)
    assert budget == SEND_PACE and lease == send_lease(Settings(smtp_timeout=5), 1)[0]


def test_no_message_starts_after_the_deadline():
    """Past the deadline the sender tries nothing (no server is needed to prove it: none is contacted)."""
    box = Mailbox(id=1, address="sdr@mail.example", sending_domain="mail.example", smtp_host="127.0.0.1",
                  smtp_port=9)
    emails = [OutgoingEmail(mailbox=box, to=f"p{n}@x.example", subject="s", text="t") for n in range(3)]
    sender = SmtpSender(timeout=1)
    try:
        errors = sender.send_many(emails, deadline=time.monotonic() - 1)
    finally:
        sender.close()
    assert all(isinstance(error, NotAttempted) and "time ran out" in str(error) for error in errors)


def test_a_message_the_caller_could_not_note_as_started_is_not_tried():
    """on_start is told of a mailbox's next messages in chunks; when it fails, nothing is tried."""
    box = Mailbox(id=1, address="sdr@mail.example", sending_domain="mail.example", smtp_host="127.0.0.1",
                  smtp_port=9)
    emails = [OutgoingEmail(mailbox=box, to=f"p{n}@x.example", subject="s", text="t") for n in range(3)]
    told: list[list[str]] = []

    def refuse(chunk: list[OutgoingEmail]) -> None:
        told.append([email.to for email in chunk])
        raise RuntimeError("database unavailable")

    sender = SmtpSender(timeout=1)
    try:
        errors = sender.send_many(emails, on_start=refuse, start_chunk=2)
    finally:
        sender.close()
    assert all(isinstance(error, NotAttempted) and "database unavailable" in str(error) for error in errors)
    assert told == [["p0@x.example", "p1@x.example"], ["p1@x.example", "p2@x.example"], ["p2@x.example"]]
