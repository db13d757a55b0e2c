"""The data model: the tables the engine owns.

Two tables are owned elsewhere, on the same ``SQLModel.metadata`` and in the same
migrations: ``SuppressionEntry`` by ``suppression.models`` and ``Task`` by
``channels.tasks``, because those packages import nothing from ``sequencer``.
Times are stored as UTC and come back as aware UTC datetimes (see ``UTCDateTime``, in
``suppression.columns`` for the same reason; the migrations name it from here).
Uniqueness that matters for correctness is a database constraint, not application code:
one touch per (enrollment, step), one signal per dedupe key, one cap counter per key.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

# UTCDateTime is not used here by name, but the migrations refer to it through this module.
from suppression.columns import UTCDateTime, utc_column  # noqa: F401


def json_column() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Account(SQLModel, table=True):
    """A company. Keyed by its domain; a company known only by name (its people write from
    free-mail addresses) is keyed by ``name_key``, the casefolded name, and has no domain."""

    id: int | None = Field(default=None, primary_key=True)
    domain: str | None = Field(default=None, index=True, unique=True, max_length=253)
    name_key: str | None = Field(default=None, index=True, unique=True, max_length=255)
    name: str = ""
    industry: str = ""
    employees: int | None = None
    country: str = ""
    custom: dict = json_column()


class Prospect(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    first_name: str = ""
    last_name: str = ""
    title: str = ""
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    timezone: str = "UTC"
    # given (from the data) | inferred (from country and region) | none (unknown: windows run in UTC)
    timezone_source: str = Field(default="given", sa_column_kwargs={"server_default": "given"})
    country: str = ""
    region: str = ""  # state or province, as ISO 3166-2 (US-CA) when known, else as written
    phone: str = ""
    linkedin_url: str = ""
    owner: str = ""
    custom: dict = json_column()
    created_at: datetime | None = utc_column()


class SequenceVersion(SQLModel, table=True):
    """One immutable version of a sequence; enrollments point at the version they began on."""

    __table_args__ = (UniqueConstraint("name", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: int
    content_hash: str
    source_path: str = ""
    definition: dict = json_column()
    is_current: bool = True
    created_at: datetime | None = utc_column()


class Mailbox(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(index=True, unique=True, max_length=320)
    display_name: str = ""
    owner: str = ""
    sending_domain: str = Field(index=True)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: str = "none"  # none | starttls | ssl
    smtp_username: str = ""
    smtp_password_env: str = ""  # name of the environment variable holding the password
    daily_cap: int = 50
    warmup_start: int = 0  # 0: no warm-up ramp
    warmup_increment: int = 0
    warmup_started_on: date | None = None
    min_gap_seconds: int = 0
    gap_jitter_seconds: int = 0
    last_sent_at: datetime | None = utc_column()
    paused: bool = False
    pause_reason: str = ""
    paused_at: datetime | None = utc_column()
    paused_by: str = ""  # "protection" (sequencer.deliverability.protection), a rule, or the person
    resumed_at: datetime | None = utc_column()  # protection counts afresh from here
    resumed_by: str = ""
    # The relay's own failures (refused, unreachable, hung up before taking a recipient), counted
    # against the mailbox and not against each message: they set the batch's short back-off.
    relay_failures: int = 0
    relay_error: str = ""
    # Inbound polling (IMAP). The password is never stored: imap_password_env names the
    # environment variable that holds it, as smtp_password_env does for SMTP.
    imap_host: str = ""
    imap_port: int = 0  # 0: 993 with SSL, else 143
    imap_ssl: bool = True
    imap_username: str = ""  # "": the address
    imap_password_env: str = ""


class Enrollment(SQLModel, table=True):
    """One prospect in one sequence version.

    ``next_due_at`` is the single source of due work: the scheduler selects active
    enrollments whose ``next_due_at`` has passed. ``version`` guards every state change
    (compare-and-set), so two ticks racing on one enrollment cannot both advance it.
    """

    __table_args__ = (
        Index("ix_enrollment_due", "state", "next_due_at"),
        # At most one running enrollment per prospect and sequence, whoever races to create it.
        Index(
            "uq_enrollment_running", "prospect_id", "sequence_name", unique=True,
            sqlite_where=text("state IN ('active', 'paused')"),
            postgresql_where=text("state IN ('active', 'paused')"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    prospect_id: int = Field(foreign_key="prospect.id", index=True)
    sequence_version_id: int = Field(foreign_key="sequenceversion.id", index=True)
    sequence_name: str = Field(index=True)
    state: str = "active"  # active | paused | finished | stopped
    reason: str = ""  # why it stopped or paused
    rule: str = ""  # the stop rule that fired, when one did
    current_step: int = 0
    next_due_at: datetime | None = utc_column()
    step_started_at: datetime | None = utc_column()  # when the current step became due
    waiting_for: str = ""  # signal type a wait_for_signal step waits for
    wait_timeout_at: datetime | None = utc_column()
    paused_until: datetime | None = utc_column()
    mailbox_id: int | None = Field(default=None, foreign_key="mailbox.id")
    thread_message_id: str = ""  # Message-ID of the first email in the thread
    thread_subject: str = ""
    signal_id: int | None = Field(default=None, foreign_key="signal.id", index=True)  # speed to lead
    enrolled_at: datetime | None = utc_column()
    finished_at: datetime | None = utc_column()
    version: int = 0
    # Taken by one tick on PostgreSQL until then (lifecycle.take_due): the other ticks skip it; a claim frees it.
    taken_until: datetime | None = utc_column()


class Touch(SQLModel, table=True):
    """One step executed for one enrollment: claimed -> sending -> sent, or skipped/blocked."""

    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_index"),
        # The reports' period scans (sequencer.reports): sends per mailbox per day read the index alone.
        Index("ix_touch_sent_mailbox", "sent_at", "mailbox_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", index=True)
    prospect_id: int = Field(foreign_key="prospect.id", index=True)
    step_index: int
    step_id: str = ""
    channel: str = ""  # email | call | linkedin | manual_email | task
    # claimed | outbox (claimed by a send batch, not yet on the wire) | sending | sent | queued | skipped
    # | blocked | failed | unknown | retry
    state: str = "claimed"
    reason: str = ""
    variant: str = ""
    mailbox_id: int | None = Field(default=None, foreign_key="mailbox.id")
    message_id: str = Field(default="", index=True)
    subject: str = ""
    recipient: str = ""
    created_at: datetime | None = utc_column()
    sent_at: datetime | None = utc_column(index=True)


class Signal(SQLModel, table=True):
    """An event about a prospect or an account; stored before it is acknowledged."""

    __table_args__ = (
        # The unprocessed signals only: what the embedded loop probes between ticks stays small
        # however many signals were processed before.
        Index("ix_signal_unprocessed", "id", sqlite_where=text("processed_at IS NULL"),
              postgresql_where=text("processed_at IS NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(index=True)
    dedupe_key: str = Field(unique=True, max_length=512)
    email: str = Field(default="", index=True)
    domain: str = Field(default="", index=True)
    prospect_id: int | None = Field(default=None, foreign_key="prospect.id", index=True)
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    payload: dict = json_column()
    source: str = ""
    occurred_at: datetime | None = utc_column()
    received_at: datetime | None = utc_column()
    processed_at: datetime | None = utc_column(index=True)


class Decision(SQLModel, table=True):
    """Append-only log of every decision the engine made, for ``sequencer explain``."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = utc_column(index=True)
    kind: str  # enrolled | sent | queued | deferred | blocked | skipped | stopped | paused | ...
    reason: str = ""
    rule: str = ""
    prospect_id: int | None = Field(default=None, index=True)
    enrollment_id: int | None = Field(default=None, index=True)
    touch_id: int | None = None
    step_index: int | None = None
    signal_id: int | None = None
    detail: dict = json_column()


class CapCounter(SQLModel, table=True):
    """One volume-cap bucket (e.g. ``mailbox:3:2026-11-25``); incremented atomically."""

    key: str = Field(primary_key=True, max_length=300)
    used: int = 0
    cap_limit: int = 0  # the limit in force at the last reservation
    expires_on: date | None = Field(default=None, index=True)


class InboundMessage(SQLModel, table=True):
    """A received message, kept once per Message-ID (or content hash) with its verdict."""

    __table_args__ = (Index("ix_inboundmessage_kind_received", "kind", "received_at"),)  # the reports' counts
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, max_length=512)
    message_id: str = ""
    from_address: str = ""
    subject: str = ""
    kind: str = ""  # the classifier's kind, or "quarantined"
    bounce_type: str = ""  # hard | soft | block, for bounces
    bounce_reason: str = Field(default="", index=True)  # the taxonomy's reason (sequencer.inbound.reasons)
    status_code: str = ""  # RFC 3463 enhanced code ("5.1.1"), else the basic reply code ("550")
    diagnostic: str = ""  # the receiving server's own words, at most 500 characters
    touch_id: int | None = Field(default=None, foreign_key="touch.id")
    enrollment_id: int | None = Field(default=None, index=True)
    match_method: str = ""
    detail: dict = json_column()
    quarantined: bool = False
    received_at: datetime | None = utc_column()


class Bounce(SQLModel, table=True):
    """One refusal of one touch, whether the server said it at send time or a DSN said it later.

    The record to count bounces by (type, reason, status code, mailbox): a refusal at send
    time has no inbound message, a DSN has one (``inbound_message_id``). ``mailbox_id`` is the
    mailbox that sent the touch, so block bounces count against the mailbox, never the person.
    A DSN that names no touch of ours is kept in ``InboundMessage`` only, not here.
    """

    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = utc_column(index=True)
    source: str = ""  # smtp (refused at send time) | dsn (a bounce message, strongly matched)
    touch_id: int | None = Field(default=None, foreign_key="touch.id", index=True)
    mailbox_id: int | None = Field(default=None, foreign_key="mailbox.id", index=True)
    recipient: str = ""
    bounce_type: str = Field(default="", index=True)  # hard | soft | block
    bounce_reason: str = Field(default="", index=True)  # the taxonomy's reason (sequencer.inbound.reasons)
    status_code: str = ""
    diagnostic: str = ""
    about_our_message: bool = False  # refused for what we sent (too big, syntax): not the recipient's fault
    inbound_message_id: int | None = Field(default=None, foreign_key="inboundmessage.id")


class DomainCheck(SQLModel, table=True):
    """The latest health verdict for a sending domain, cached until ``expires_at``."""

    domain: str = Field(primary_key=True, max_length=253)
    status: str  # pass | warn | fail | unknown
    checked_at: datetime | None = utc_column()
    expires_at: datetime | None = utc_column()
    report: dict = json_column()
    last_good_status: str = ""  # the last verdict reached with complete DNS answers
    last_good_at: datetime | None = utc_column()


class InboundCursor(SQLModel, table=True):
    """How far IMAP polling got in one mailbox folder."""

    __table_args__ = (UniqueConstraint("mailbox_id", "folder"),)
    id: int | None = Field(default=None, primary_key=True)
    mailbox_id: int = Field(foreign_key="mailbox.id")
    folder: str = "INBOX"
    uidvalidity: int = 0
    last_uid: int = 0


class ApiKey(SQLModel, table=True):
    """A key for the HTTP API's write endpoints (``sequencer api-keys``); the key itself is never stored.

    ``key_hash`` is the SHA-256 of the whole key: the key is 32 random bytes, so a plain
    digest cannot be reversed by guessing and needs no salt or slow hash. ``prefix`` is its
    first characters, kept to find the row and to show which key is which; it is not secret.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    prefix: str = Field(index=True, max_length=16)
    key_hash: str = Field(unique=True, max_length=64)
    scopes: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = utc_column()
    last_used_at: datetime | None = utc_column()
    revoked_at: datetime | None = utc_column()


class Meeting(SQLModel, table=True):
    """A meeting an SDR set for an AE with a prospect, from booking to held (or not) and accepted (or not).

    ``sequencer.meetings`` ``booking`` (the booking) and ``moves`` (everything after) are the one writer of its state:
    scheduled -> rescheduled (any number of times) -> held | no_show | canceled. Its history
    is the decision log (kinds ``meeting_*``, ``detail.meeting_id``), so ``sequencer explain``
    shows it. ``uid`` is the iCalendar UID every invite for it carries; ``ical_sequence`` the
    iCalendar SEQUENCE (0 at booking, +1 on each reschedule or cancel). A booking tool's own
    id (``external_id``) is unique per ``source``, so a webhook delivered twice books once.
    """

    __table_args__ = (UniqueConstraint("source", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True, max_length=255)
    prospect_id: int = Field(foreign_key="prospect.id", index=True)
    enrollment_id: int | None = Field(default=None, foreign_key="enrollment.id", index=True)
    sdr: str = Field(default="", index=True, max_length=320)
    ae: str = Field(index=True, max_length=320)
    title: str = ""
    location: str = ""
    start_at: datetime | None = utc_column(index=True)
    duration_minutes: int = 30
    state: str = Field(default="scheduled", index=True)  # scheduled | rescheduled | held | no_show | canceled
    ical_sequence: int = 0
    source: str = "cli"  # cli | task | http | calcom | calendly
    external_id: str | None = Field(default=None, max_length=255)
    previous_external_ids: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # {"email", "name", "role": ae | prospect | sdr, "partstat": NEEDS-ACTION | ACCEPTED | DECLINED | TENTATIVE}
    attendees: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    held_minutes: int | None = None
    held_at: datetime | None = utc_column()  # when it was recorded as held: the acceptance window starts here
    no_show_fault: str = ""  # "" | prospect | ae | sdr | unknown
    no_show_reason: str = ""
    recorded_by: str = ""  # who recorded it held or a no-show
    cancel_reason: str = ""
    acceptance: str = "pending"  # pending | accepted | rejected
    rejection_reason: str = ""
    rejection_note: str = ""
    decided_at: datetime | None = utc_column()
    decided_by: str = ""
    review: str = ""  # why it waits for a person's review (an unknown attendee, parked); "" when it does not
    start_set_at: datetime | None = utc_column()  # when start_at was last set (reminders due before it are not sent)
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()


class MeetingNotice(SQLModel, table=True):
    """One reminder (or acceptance chase) sent for a meeting, at most once: ``key`` is unique.

    ``key`` names what it is for, e.g. ``reminder:7:2026-12-03T15:00:00+00:00:24h`` (a
    reschedule gives new keys) or ``acceptance:7``; the row is written, in its own
    transaction, before the email or task goes, so two workers cannot both send it.
    """

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=300)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    kind: str  # reminder | acceptance
    state: str = "claimed"  # claimed | sent | skipped | failed | queued
    reason: str = ""
    at: datetime | None = utc_column()


class DomainCheckRecord(SQLModel, table=True):
    """Every domain check with its time (``DomainCheck`` keeps only the latest), so a report can
    show what changed since the previous one. Written by ``sequencer.domains.health``."""

    __table_args__ = (Index("ix_domaincheckrecord_domain_at", "domain", "checked_at"),)
    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=253)
    status: str = ""
    checked_at: datetime | None = utc_column()
    report: dict = json_column()


class SendingDomainPause(SQLModel, table=True):
    """A sending domain stopped by protection (or a person): its touches are deferred while ``paused``."""

    domain: str = Field(primary_key=True, max_length=253)
    paused: bool = True
    reason: str = ""
    paused_at: datetime | None = utc_column()
    paused_by: str = ""
    resumed_at: datetime | None = utc_column()  # protection counts afresh from here
    resumed_by: str = ""


class DmarcReport(SQLModel, table=True):
    """One DMARC aggregate report (RFC 7489 appendix C), stored once per (reporter, report id)."""

    __table_args__ = (UniqueConstraint("org_name", "report_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_name: str = Field(max_length=255)
    report_id: str = Field(max_length=255)
    reporter_email: str = ""
    domain: str = Field(index=True, max_length=253)  # policy_published/domain
    policy: str = ""  # p=
    begin_at: datetime | None = utc_column(index=True)
    end_at: datetime | None = utc_column()
    received_at: datetime | None = utc_column()
    inbound_message_id: int | None = Field(default=None, foreign_key="inboundmessage.id")


class DmarcRecord(SQLModel, table=True):
    """One row of an aggregate report: messages from one source IP, and how they authenticated."""

    id: int | None = Field(default=None, primary_key=True)
    dmarc_report_id: int = Field(foreign_key="dmarcreport.id", index=True)
    source_ip: str = Field(max_length=45)
    count: int = 0
    header_from: str = ""
    disposition: str = ""  # none | quarantine | reject
    dkim: str = ""  # policy_evaluated: pass | fail (aligned DKIM)
    spf: str = ""  # policy_evaluated: pass | fail (aligned SPF)
    dkim_result: str = ""  # auth_results: the raw DKIM result of the first signature
    spf_result: str = ""  # auth_results: the raw SPF result
