"""Pure parts of the SDR's workspace: the templates folder order, template field checks, the
upgrade rule, and the sandbox outbox's message format."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from pathlib import Path

import pytest

from channels.email import NotAttempted, UnsendableMessage
from channels.message import OutgoingEmail
from channels.outbox import OutboxSender
from sequencer.core.config import REPO_TEMPLATES, Settings, resolve_templates
from sequencer.sequences.versions import line_up_problem
from sequencer.sequences.vocabulary import Vocabulary

pytestmark = pytest.mark.unit


def test_templates_order_option_then_setting_then_local_folder_then_shipped(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    shipped = resolve_templates(Settings(), cwd=tmp_path / "nowhere")
    local = resolve_templates(Settings(), cwd=tmp_path)
    setting = resolve_templates(Settings(templates_dir=Path("/x"), templates_origin="templates_dir in a.toml"),
                                cwd=tmp_path)
    option = resolve_templates(Settings(), tmp_path / "mine", cwd=tmp_path)

    assert (shipped.templates_dir, shipped.templates_origin) == (REPO_TEMPLATES, "the shipped examples")
    assert (local.templates_dir, local.templates_origin) == ((tmp_path / "templates").resolve(), "./templates")
    assert (setting.templates_dir, setting.templates_origin) == (Path("/x"), "templates_dir in a.toml")
    assert (option.templates_dir, option.templates_origin) == ((tmp_path / "mine").resolve(), "--templates")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ prospect.first_name }} {{ account.name }} {{ sender.name }} {{ step.id }}", []),
        ("{{ prospect.frist_name }}", [(1, "unknown field prospect.frist_name (did you mean first_name?)")]),
        ("\n\n{{ prospect['titel'] | default('x') }}", [(3, "unknown field prospect.titel (did you mean title?)")]),
        ("{% if x %}{% endif %}{{ account.nmae }}", [(1, "unknown field account.nmae (did you mean name?)")]),
        ("{{ sender.nme }}", [(1, "unknown field sender.nme (did you mean name?)")]),
        ("{{ signal.anything_a_source_sends }}", []),  # payloads are open
        ("{% set prospect = {'x': 1} %}{{ prospect.x }}", []),  # the template's own variable
        ("{% for p in [prospect] %}{{ p.whatever }}{% endfor %}", []),  # not a root
        ("{{ prospect.zzzzzz }}", [(1, "unknown field prospect.zzzzzz;")]),  # nothing close: no guess
    ],
)
def test_template_fields_are_checked_on_known_roots(source: str, expected: list[tuple[int, str]]) -> None:
    found = Vocabulary().template_problems(source)

    assert len(found) == len(expected), found
    for (line, message), (want_line, start) in zip(found, expected, strict=True):
        assert line == want_line and message.startswith(start), message


def test_custom_fields_are_known_per_root() -> None:
    words = Vocabulary(custom={"prospect": frozenset({"tier"})})

    assert words.template_problems("{{ prospect.tier }}") == []
    assert words.template_problems("{{ account.tier }}")[0][1].startswith("unknown field account.tier")


def definition(*steps: tuple[str, str]) -> dict:
    return {"steps": [{"id": step_id, "kind": kind} for step_id, kind in steps]}


@pytest.mark.parametrize(
    ("new", "step", "problem"),
    [
        (definition(("a", "email"), ("w", "wait"), ("b", "email")), 1, ""),
        (definition(("a", "email"), ("w", "wait"), ("c", "call"), ("b", "email")), 1, ""),  # later steps may change
        (definition(("a", "email"), ("w", "wait")), 1, ""),
        (definition(("x", "email"), ("w", "wait"), ("b", "email")), 1, "step 1 is 'a' in its version and 'x'"),
        (definition(("a", "email"), ("w", "call"), ("b", "email")), 1, "step 2 ('w') is a wait in its version"),
        (definition(("a", "email")), 1, "it is at step 2 and the new version has 1 step(s)"),
    ],
)
def test_steps_line_up_when_ids_and_kinds_match_up_to_the_current_step(new: dict, step: int, problem: str) -> None:
    old = definition(("a", "email"), ("w", "wait"), ("b", "email"))

    found = line_up_problem(old, new, step)

    assert found.startswith(problem) and bool(found) == bool(problem), found


@dataclass
class Account:
    id: int | None = 1
    address: str = "sam@outreach-acme.example"
    display_name: str = "Sam"
    sending_domain: str = "outreach-acme.example"
    smtp_host: str = ""
    smtp_port: int = 0
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password_env: str = ""


def test_the_outbox_stores_the_wire_message_marked_and_refuses_what_smtp_would(tmp_path: Path) -> None:
    sender = OutboxSender(tmp_path / "outbox")
    good = OutgoingEmail(mailbox=Account(), to="dana@northwind.example", subject="Northwind's new round",
                         text="Hi Dana", envelope_from="b+t1@outreach-acme.example")
    bad = OutgoingEmail(mailbox=Account(), to="x@y.example", subject="s", text="t",
                        headers={"X-Note": "a\r\nBcc: everyone@example.com"})

    errors = sender.send_many([good, bad])

    stored = list(mailbox.Maildir(tmp_path / "outbox", create=False))
    assert errors[0] is None and isinstance(errors[1], UnsendableMessage)
    assert len(stored) == 1
    assert stored[0]["Subject"] == "Northwind's new round"
    assert stored[0]["X-Sequencer-Sandbox"] == "1"
    assert stored[0]["Return-Path"] == "<b+t1@outreach-acme.example>"
    assert stored[0]["Delivered-To"] == "dana@northwind.example"
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []


def test_the_outbox_notes_each_start_as_the_engine_asks_and_stores_nothing_it_could_not_note(tmp_path: Path) -> None:
    """send_batch marks messages "sending" through on_start before they go: the outbox keeps that contract."""
    sender = OutboxSender(tmp_path / "outbox")
    emails = [OutgoingEmail(mailbox=Account(), to=f"p{n}@northwind.example", subject="s", text="t") for n in range(5)]
    noted: list[list[str]] = []

    def note(chunk):
        if len(noted) == 2:
            raise RuntimeError("database gone")
        noted.append([email.to for email in chunk])

    errors = sender.send_many(emails, on_start=note, start_chunk=2)

    assert noted == [["p0@northwind.example", "p1@northwind.example"], ["p2@northwind.example", "p3@northwind.example"]]
    assert errors[:4] == [None] * 4 and isinstance(errors[4], NotAttempted)
    assert len(list(mailbox.Maildir(tmp_path / "outbox", create=False))) == 4
