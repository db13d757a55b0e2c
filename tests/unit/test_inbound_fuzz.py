"""classify() must never raise, whatever bytes arrive, and must never crash inside either.

``classify`` turns any exception of its own into an "unparseable" classification so one
bad message is quarantined instead of stopping ingestion. That safety net would make
these tests pass even if the classifier failed on every input, so every result here is
also checked for a recorded crash (``error``): only input that really cannot be read may
come back unparseable, and never by way of an exception.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.inbound import Classification, classify
from sequencer.inbound.classify import Kind

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "inbound"
FIXTURES = sorted(FIXTURES_DIR.glob("*.eml"))
KINDS = set(get_args(Kind))


def assert_no_crash(result: Classification, raw: bytes) -> None:
    """A well-formed answer that the classifier reached without an exception."""
    assert result.error is None, f"classifier crashed on {raw[:200]!r}: {result.error}"
    assert result.kind in KINDS
    if result.kind == "unparseable":
        assert result.reason and not result.reason.startswith("classifier error"), result.reason
    else:
        assert not result.reason
    assert result.to_dict()["error"] is None


@settings(max_examples=200, deadline=1000)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw: bytes) -> None:
    assert_no_crash(classify(raw), raw)


@settings(max_examples=200, deadline=1000)
@given(
    st.sampled_from(FIXTURES),
    st.integers(min_value=0, max_value=8000),
    st.binary(min_size=0, max_size=64),
    st.integers(min_value=0, max_value=200),
)
def test_mutated_real_messages(path: Path, at: int, insert: bytes, cut: int) -> None:
    raw = path.read_bytes()
    at = min(at, len(raw))
    mutated = raw[:at] + insert + raw[at + cut :]
    assert_no_crash(classify(mutated, our_domains=frozenset({"acme-outreach.com"})), mutated)


@settings(max_examples=100, deadline=1000)
@given(st.text(max_size=2000))
def test_header_like_text(text: str) -> None:
    raw = f"From: a@b.example\nSubject: {text[:200]}\nContent-Type: text/plain; charset={text[:20]}\n\n{text}"
    data = raw.encode("utf-8", "surrogatepass")
    result = classify(data)
    assert_no_crash(result, data)
    if result.kind == "unparseable":  # it has a From line: only binary in the header may make it unreadable
        header_end = data.find(b"\n\n")
        assert b"\x00" in data[:header_end], result.reason


def test_a_crash_is_quarantined_but_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net the tests above look through: a crash still comes back, named."""
    def broken(raw: bytes):
        raise KeyError("boom")

    # the module, not the function the package exports under the same name
    monkeypatch.setattr(importlib.import_module("sequencer.inbound.classify"), "parse_message", broken)
    result = classify((FIXTURES_DIR / "reply_positive_en.eml").read_bytes())
    assert result.kind == "unparseable"
    assert result.error == "KeyError: 'boom'"
    assert result.to_dict()["error"] == "KeyError: 'boom'"
    with pytest.raises(AssertionError, match="classifier crashed"):
        assert_no_crash(result, b"")
