"""The inbound corpus: every fixture states its expected answer in its path, and each must be read so.

tests/fixtures/inbound/corpus/bounce/<reason>/<source>.eml holds one bounce per file, written
after what the MTA or service documents or sends (RFC 3464 DSNs of Postfix, Exim, Sendmail,
Exchange / Office 365, Gmail, Yahoo, iCloud...; non-standard texts of qmail, Exim, carriers,
ESPs; other languages; a DSN with no sender headers; the status only in the text). The test
checks the reason, the bounce type that follows from it, and, separately, the one decision
that cannot be undone: whether the address would be suppressed. It prints the figures.

The other classes sit beside it, the expected kind in the path: complaint/ (ARF of Yahoo, Outlook.com
JMRP, AOL, Comcast; RFC 5965/6650 shapes; abuse desks forwarding our message as message/rfc822; SES
complaint JSON), unsubscribe/ (mail clients' and relays' unsubscribe buttons, Auto-Submitted or not,
and people asking), autoreply/<out_of_office|auto_reply|left_company>/ (RFC 3834 and vendor
responders in several languages), human/reply/ (Outlook, Gmail, Apple Mail, Thunderbird, mobile
clients, with and without quoted history; "out of office next week" written by a person).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sequencer.inbound import classify
from sequencer.inbound.reasons import REASONS
from sequencer.rules.book import BOUNCE_REASONS

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "inbound" / "corpus"
SUPPRESSING = {"user_unknown", "host_unknown", "moved", "not_accepting"}  # written here, not read from the code
BOUNCES = sorted((CORPUS / "bounce").glob("*/*.eml"))
OURS = frozenset({"outreach-acme.example"})
# folder -> the kind each message in it must be read as (None: the subfolder names the kind)
CLASSES = {"complaint": "complaint", "unsubscribe": "unsubscribe_request", "autoreply": None, "human": None}
OTHERS = sorted(p for folder in CLASSES for p in (CORPUS / folder).rglob("*.eml"))


def _expected_kind(path: Path) -> str:
    folder = path.relative_to(CORPUS).parts[0]
    return CLASSES[folder] or path.parent.name


def test_the_taxonomy_is_the_one_stop_rules_accept() -> None:
    assert {name: r.bounce_type for name, r in REASONS.items()} == BOUNCE_REASONS
    assert {name for name, r in REASONS.items() if r.bounce_type == "hard"} == SUPPRESSING


def test_the_corpus_covers_every_class_that_matters() -> None:
    reasons = {path.parent.name for path in BOUNCES}
    assert len(BOUNCES) >= 70
    assert reasons >= SUPPRESSING | {"suspended", "mailbox_full", "policy_blocked", "spam_detected", "auth_failure",
                                     "rate_limited", "relay_denied", "expired", "delayed", "virus", "message_too_big"}


@pytest.mark.parametrize("path", BOUNCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_bounce_is_read_as_its_fixture_says(path: Path) -> None:
    result = classify(path.read_bytes(), our_domains=OURS)

    assert result.kind == "bounce", result.evidence
    assert result.bounce_reason == path.parent.name, (result.status_code, result.diagnostic)
    # a refusal of our message itself (too big, syntax, 5.6.x content) is soft whatever its reason: ours to fix
    assert result.bounce_type == ("soft" if result.about_our_message else BOUNCE_REASONS[path.parent.name])
    assert result.original_message_id and result.original_message_id.startswith("touch-")


def test_recognition_and_suppress_decision_over_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    recognised = reason_right = suppress_right = 0
    wrong: list[str] = []
    for path in BOUNCES:
        result = classify(path.read_bytes())
        expected = path.parent.name
        recognised += result.kind == "bounce"
        reason_right += result.bounce_reason == expected
        suppress_right += (result.bounce_type == "hard") == (expected in SUPPRESSING)
        if result.bounce_reason != expected:
            wrong.append(f"{path.parent.name}/{path.name}: {result.kind} {result.bounce_reason}")
    total = len(BOUNCES)
    with capsys.disabled():
        print(f"\nbounce corpus: {total} messages, recognised {recognised / total:.1%}, reason right "
              f"{reason_right / total:.1%}, suppress decision right {suppress_right / total:.1%}")
    assert wrong == []
    assert recognised == suppress_right == total


def test_the_other_classes_are_covered() -> None:
    kinds = [_expected_kind(p) for p in OTHERS]
    assert {k: kinds.count(k) >= 2 for k in set(kinds)} == dict.fromkeys(
        {"complaint", "unsubscribe_request", "out_of_office", "auto_reply", "left_company", "reply"}, True)
    assert len(OTHERS) >= 70


@pytest.mark.parametrize("path", OTHERS, ids=lambda p: str(p.relative_to(CORPUS).with_suffix("")))
def test_each_message_is_read_as_its_fixture_says(path: Path) -> None:
    result = classify(path.read_bytes(), our_domains=OURS)

    assert result.kind == _expected_kind(path), result.evidence
    if result.kind == "complaint":  # the touch is found by the original's Message-ID, whatever is redacted
        assert result.original_message_id and result.original_message_id.startswith("touch-"), result.evidence


def test_figures_per_class(capsys: pytest.CaptureFixture[str]) -> None:
    automatic = {"out_of_office", "auto_reply", "left_company"}
    right: dict[str, list[bool]] = {}
    loose: dict[str, list[bool]] = {}  # the decision that matters: automatic vs human, complaint or unsubscribe
    for path in OTHERS:
        expected, got = _expected_kind(path), classify(path.read_bytes(), our_domains=OURS).kind
        folder = path.relative_to(CORPUS).parts[0]
        right.setdefault(folder, []).append(got == expected)
        loose.setdefault(folder, []).append(
            got in automatic if expected in automatic else
            got in {"complaint", "unsubscribe_request"} if folder == "complaint" else got == expected)
    with capsys.disabled():
        for folder in sorted(right):
            n = len(right[folder])
            print(f"\n{folder}: {n} messages, kind right {sum(right[folder]) / n:.1%}, "
                  f"{'automatic' if folder == 'autoreply' else 'class'} right {sum(loose[folder]) / n:.1%}", end="")
        print()
    assert all(all(v) for v in right.values())
