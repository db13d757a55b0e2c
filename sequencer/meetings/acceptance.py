"""The acceptance loop: the AE accepts or rejects each held meeting within a window.

The team's written qualification definition is a YAML file (``qualification_file``; the
default is ``qualification.yaml`` in the templates folder): the criteria that make a
meeting sales-accepted, the minimum length of a held meeting that counts, and the fixed
rejection taxonomy explained for the AE. A held meeting the AE has not decided on within
``meeting_acceptance_days`` of it being recorded held is overdue: it is listed
(``sequencer meetings list --overdue``) and its AE gets one reminder task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from channels import tasks as task_channel
from sequencer.core import decisions
from sequencer.core.config import REPO_TEMPLATES, Settings
from sequencer.core.models import Enrollment, Meeting, MeetingNotice, Prospect, Touch
from sequencer.core.yaml_source import SourceError, load_yaml
from sequencer.meetings.checks import REJECTION_REASONS

FILENAME = "qualification.yaml"
_KEYS = {"name", "held", "criteria", "rejection_reasons"}


@dataclass
class Qualification:
    """What makes a meeting sales-accepted, as the team wrote it down."""

    path: Path
    name: str = "Sales-accepted meeting"
    minimum_minutes: int = 0  # a held meeting shorter than this is not qualified-held
    criteria: list[tuple[str, str]] = field(default_factory=list)  # (id, text)
    reasons: dict[str, str] = field(default_factory=dict)  # rejection code -> what it means here


def qualification_path(settings: Settings) -> Path:
    """The configured file, else ``qualification.yaml`` in the templates folder, else the shipped one."""
    if settings.qualification_file:
        return Path(settings.qualification_file)
    local = Path(settings.templates_dir) / FILENAME
    return local if local.exists() else REPO_TEMPLATES / FILENAME


def load_qualification(settings: Settings) -> Qualification:
    """Read and check the qualification file; every mistake is a ``SourceError`` line ``file:line: ...``."""
    path = qualification_path(settings)
    source = load_yaml(path)
    data = source.data
    if not isinstance(data, dict):
        raise SourceError([f"{path}:1: the qualification file must be a mapping (name, held, criteria, "
                           "rejection_reasons)"])
    errors = [f"{source.where(key)}: unknown key {key!r} (expected {', '.join(sorted(_KEYS))})"
              for key in data if key not in _KEYS]
    found = Qualification(path=path, reasons=dict(REJECTION_REASONS))
    name = data.get("name", found.name)
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{source.where('name')}: name must be text")
    else:
        found.name = name.strip()
    held = data.get("held") or {}
    if not isinstance(held, dict) or set(held) - {"minimum_minutes"}:
        errors.append(f"{source.where('held')}: held takes only minimum_minutes")
    else:
        minimum = held.get("minimum_minutes", 0)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
            errors.append(f"{source.where('held', 'minimum_minutes')}: minimum_minutes must be a whole number "
                          f"of minutes, 0 or more, not {minimum!r}")
        else:
            found.minimum_minutes = minimum
    criteria = data.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        errors.append(f"{source.where('criteria')}: criteria must be a list of {{id, text}}: what the AE checks")
    else:
        for index, item in enumerate(criteria):
            if (not isinstance(item, dict) or set(item) != {"id", "text"}
                    or not all(isinstance(item[k], str) and item[k].strip() for k in ("id", "text"))):
                errors.append(f"{source.where('criteria', index)}: a criterion is {{id: ..., text: ...}}, both text")
                continue
            found.criteria.append((item["id"].strip(), item["text"].strip()))
    reasons = data.get("rejection_reasons") or {}
    if not isinstance(reasons, dict):
        errors.append(f"{source.where('rejection_reasons')}: rejection_reasons must map a code to its meaning")
    else:
        for code, text in reasons.items():
            if code not in REJECTION_REASONS:
                errors.append(f"{source.where('rejection_reasons', code)}: {code!r} is not in the fixed rejection "
                              f"taxonomy ({', '.join(REJECTION_REASONS)})")
            elif not isinstance(text, str) or not text.strip():
                errors.append(f"{source.where('rejection_reasons', code)}: the meaning of {code} must be text")
            else:
                found.reasons[code] = text.strip()
    if errors:
        raise SourceError(errors)
    return found


def window_closes(meeting: Meeting, settings: Settings) -> datetime | None:
    """When the AE's window to decide on a held meeting closes (None if it is not held)."""
    if meeting.held_at is None:
        return None
    return meeting.held_at + timedelta(days=settings.meeting_acceptance_days)


def overdue(session: Session, now: datetime, settings: Settings) -> list[Meeting]:
    """Held meetings the AE has neither accepted nor rejected within the window, oldest first."""
    cutoff = now - timedelta(days=settings.meeting_acceptance_days)
    return list(session.exec(select(Meeting).where(
        Meeting.state == "held", Meeting.acceptance == "pending", Meeting.held_at < cutoff,
    ).order_by(Meeting.held_at, Meeting.id)))


def chase_overdue(session: Session, now: datetime, settings: Settings) -> list[str]:
    """Give each overdue meeting's AE one reminder task (``channels.tasks``), once; commits each.

    "Once" is the unique ``MeetingNotice.key`` ``acceptance:<id>``. A task hangs on a touch
    of an enrollment (the queue's own schema), so a meeting with no enrollment (booked for
    someone never in a sequence) gets its chase recorded in the decision log instead.
    """
    done = []
    for meeting in overdue(session, now, settings):
        notice = MeetingNotice(key=f"acceptance:{meeting.id}", meeting_id=meeting.id, kind="acceptance", at=now)
        try:
            with session.begin_nested():
                session.add(notice)
                session.flush()
        except IntegrityError:
            continue  # chased already
        closes = window_closes(meeting, settings)
        why = (f"meeting #{meeting.id} held {meeting.held_at:%Y-%m-%d}: {meeting.ae} has not accepted or rejected "
               f"it; the {settings.meeting_acceptance_days}-day window closed {closes:%Y-%m-%d %H:%M} UTC")
        task = _queue_task(session, now, meeting, why)
        notice.state = "queued" if task else "skipped"
        notice.reason = f"task #{task.id}" if task else "no enrollment to queue a task on"
        session.add(notice)
        decisions.record(session, now, "meeting_acceptance_overdue", why + (f" (task #{task.id} for {meeting.ae})"
                         if task else ""), prospect_id=meeting.prospect_id, meeting_id=meeting.id,
                         task_id=task.id if task else None, via="acceptance loop")
        session.commit()
        done.append(why)
    return done


def _queue_task(session: Session, now: datetime, meeting: Meeting, why: str) -> task_channel.Task | None:
    if meeting.enrollment_id is None or session.get(Enrollment, meeting.enrollment_id) is None:
        return None
    prospect = session.get(Prospect, meeting.prospect_id)
    # The queue takes a touch: this one stands for the chase, not a sequence step. Its
    # step index is the meeting's id, negated: no step has it, and (enrollment, step) is
    # unique, so a second chase for the meeting could not be stored either.
    touch = Touch(enrollment_id=meeting.enrollment_id, prospect_id=meeting.prospect_id, step_index=-meeting.id,
                  step_id=f"meeting-{meeting.id}-acceptance", channel="task", state="queued",
                  reason="acceptance overdue", recipient=meeting.ae, created_at=now, sent_at=now)
    session.add(touch)
    session.flush()
    title = f"Accept or reject meeting #{meeting.id} with {prospect.email}"
    body = (f"{why}.\n\nDecide against the qualification definition (sequencer meetings show {meeting.id}):\n"
            f"  sequencer meetings accept {meeting.id}\n"
            f"  sequencer meetings reject {meeting.id} --reason CODE [--note TEXT]\n")
    return task_channel.queue(session, touch, meeting.ae, "task", title, body, now)
