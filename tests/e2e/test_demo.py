"""The demo runs the whole engine end to end and tells the story it promises."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from sequencer.app.demo import run_demo


@pytest.fixture(scope="module")
def demo() -> tuple[dict, str]:
    """Run the demo once for this module: (returned counts, printed text)."""
    buffer = io.StringIO()
    counts = run_demo(console=Console(file=buffer, width=200))
    return counts, buffer.getvalue()


def test_demo_delivers_email_over_loopback_smtp(demo: tuple[dict, str]) -> None:
    counts, text = demo

    assert counts["emails"] > 0
    assert f"{counts['emails']} emails received by the loopback SMTP server" in text


def test_demo_ends_with_stopped_and_finished_enrollments(demo: tuple[dict, str]) -> None:
    counts, text = demo

    assert counts["states"].get("stopped", 0) >= 1
    assert counts["states"].get("finished", 0) >= 1
    stops = [line for line in text.splitlines() if " stopped " in line]
    # Dana's reply stops her sequence ("replied: ..." or 'reply "Re: ..."', by a reply rule).
    assert any("dana.reyes@northwind.example" in line and "repl" in line and "reply" in line.split("rule")[-1]
               for line in stops), stops
    assert any("priya.nair@brightside.example" in line and "meeting booked" in line for line in stops), stops


@pytest.mark.parametrize(
    "story",
    [
        "missing variable prospect.first_name",
        "suppressed: customer",
        "duplicate of signal",
    ],
)
def test_demo_prints_the_story(demo: tuple[dict, str], story: str) -> None:
    _, text = demo

    assert story in text


def test_each_delivery_is_printed_under_the_decision_that_sent_it(demo: tuple[dict, str]) -> None:
    counts, text = demo
    lines = text.splitlines()

    delivered = [index for index, line in enumerate(lines) if " delivered " in line]
    assert len(delivered) == counts["emails"]
    for index in delivered:
        recipient = lines[index].rsplit("-> ", 1)[1].strip()
        assert " sent " in lines[index - 1] and recipient in lines[index - 1], lines[index - 1:index + 1]


def test_the_timeline_is_in_time_order_under_one_clock(demo: tuple[dict, str]) -> None:
    _, text = demo
    lines = text.split("timeline (UTC", 1)[1].split(" summary ", 1)[0].splitlines()[1:]

    stamps = [line[:11] for line in lines if re.match(r"\d\d-\d\d \d\d:\d\d", line)]
    assert len(stamps) > 20 and stamps == sorted(stamps)
    assert "11-30 13:30 (08:30 EST) enrolled     dana.reyes@northwind.example" in text  # her own time beside


def test_speed_to_lead_counts_a_task_when_it_is_done(demo: tuple[dict, str]) -> None:
    """Tom's job change (11:20 UTC) starts with a LinkedIn task: queued at once, but he is first
    touched when the SDR works the queue at 16:00 UTC."""
    _, text = demo
    [tom] = [line for line in text.splitlines() if "tom.okafor@helio.example" in line and "job-change" in line]

    assert "4 h 40 min" in tom and "< 1 min" not in tom
