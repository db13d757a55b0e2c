"""classify() must never raise, whatever bytes arrive."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.inbound import classify
from sequencer.inbound.classify import Kind

FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "inbound").glob("*.eml"))
KINDS = set(get_args(Kind))


@settings(max_examples=200, deadline=1000)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw: bytes) -> None:
    result = classify(raw)
    assert result.kind in KINDS
    assert not result.reason or result.kind == "unparseable"


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
    result = classify(mutated, our_domains=frozenset({"acme-outreach.com"}))
    assert result.kind in KINDS
    result.to_dict()


@settings(max_examples=100, deadline=1000)
@given(st.text(max_size=2000))
def test_header_like_text(text: str) -> None:
    raw = f"From: a@b.example\nSubject: {text[:200]}\nContent-Type: text/plain; charset={text[:20]}\n\n{text}"
    assert classify(raw.encode("utf-8", "surrogatepass")).kind in KINDS
