"""The demo runs the whole engine end to end and tells the story it promises."""

from __future__ import annotations

import io

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
