"""The suppression store and the send guard, against a real migrated SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from suppression_fixtures import NOW, all_entries, migrated_engine, open_session

from sequencer.core.config import Settings
from sequencer.core.models import Account, Enrollment, Prospect
from sequencer.engine.guards import TouchContext, suppression_guard
from sequencer.engine.tick_state import TickState
from suppression.models import SuppressionEntry
from suppression.store import (
    add_entry,
    find_suppression,
    find_suppressions,
    lookup_keys,
    lookup_query,
    make_spec,
    remove_entry,
    unsubscribe,
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with open_session(engine) as session:
        yield session


def add(session: Session, raw: str, **kwargs: object) -> SuppressionEntry:
    entry, _ = add_entry(session, NOW, make_spec(raw, **kwargs), "test")  # type: ignore[arg-type]
    return entry


def test_nothing_matches_an_empty_list(session: Session) -> None:
    assert find_suppression(session, NOW, "ann@example.com", 7) is None


def test_exact_address_matches_however_it_is_spelled(session: Session) -> None:
    add(session, "Ann@Example.com", reason="hard_bounce")
    found = find_suppression(session, NOW, "  ANN@example.COM ")
    assert found is not None and (found.kind, found.value) == ("email", "ann@example.com")
    assert find_suppression(session, NOW, "bob@example.com") is None


def test_domain_entry_covers_its_subdomains_but_not_lookalikes(session: Session) -> None:
    add(session, "example.co.uk", reason="competitor")
    for address in ("a@example.co.uk", "a@mail.example.co.uk", "a@x.y.example.co.uk"):
        found = find_suppression(session, NOW, address)
        assert found is not None and found.value == "example.co.uk", address
    assert find_suppression(session, NOW, "a@notexample.co.uk") is None
    assert find_suppression(session, NOW, "a@example.com") is None


def test_subdomain_entry_does_not_cover_the_parent(session: Session) -> None:
    add(session, "eu.example.com", reason="customer")
    assert find_suppression(session, NOW, "a@eu.example.com") is not None
    assert find_suppression(session, NOW, "a@example.com") is None


def test_account_entry_matches_by_account_id(session: Session) -> None:
    add(session, "42", kind="account", reason="do_not_contact")
    found = find_suppression(session, NOW, "ann@example.com", account_id=42)
    assert found is not None and (found.kind, found.value) == ("account", "42")
    assert find_suppression(session, NOW, "ann@example.com", account_id=43) is None
    assert find_suppression(session, NOW, None, account_id=42) is not None


def test_most_specific_entry_explains_the_block(session: Session) -> None:
    add(session, "7", kind="account", reason="customer")
    add(session, "example.com", reason="competitor")
    add(session, "mail.example.com", reason="manual")
    add(session, "ann@mail.example.com", reason="unsubscribed")
    found = find_suppression(session, NOW, "ann@mail.example.com", 7)
    assert found is not None and found.reason == "unsubscribed"
    found = find_suppression(session, NOW, "bob@mail.example.com", 7)
    assert found is not None and found.value == "mail.example.com"


def test_expired_entries_are_ignored(session: Session) -> None:
    add(session, "ann@example.com", reason="manual", expires_at=NOW + timedelta(days=1))
    assert find_suppression(session, NOW, "ann@example.com") is not None
    assert find_suppression(session, NOW + timedelta(days=1), "ann@example.com") is None
    assert find_suppression(session, NOW + timedelta(days=2), "ann@example.com") is None


def test_find_refuses_a_garbage_address(session: Session) -> None:
    with pytest.raises(ValueError, match="invalid email 'not-an-address'"):
        find_suppression(session, NOW, "not-an-address")


def test_batch_lookup_answers_like_one_at_a_time(session: Session) -> None:
    """Many subjects in one query give the same entries; a garbage address is left out."""
    add(session, "ann@example.com")
    add(session, "example.org", kind="domain", reason="customer")
    add(session, "7", kind="account", reason="competitor")
    subjects = [("ann@example.com", None), ("bob@sub.example.org", None), ("cy@else.net", 7),
                ("dee@else.net", None), ("not-an-address", None)]
    found = find_suppressions(session, NOW, subjects)
    assert set(found) == set(subjects[:4])
    for email, account_id in subjects[:4]:
        assert found[(email, account_id)] == find_suppression(session, NOW, email, account_id)
    assert [found[s].reason if found[s] else None for s in subjects[:4]] == [
        "manual", "customer", "competitor", None]


def test_lookup_is_one_indexed_query_never_a_scan(session: Session) -> None:
    """The hot path must stay fast at a million rows: only index searches, no SCAN."""
    keys = lookup_keys("ann@a.b.example.co.uk", 9)
    assert len(keys) == 5
    assert find_suppression(session, NOW, "ann@a.b.example.co.uk", 9) is None
    query = lookup_query(NOW, [value for _, value in keys])
    compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    plan = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    details = [row[-1] for row in plan]
    assert any("USING INDEX" in detail for detail in details), details
    assert not any(detail.startswith("SCAN") for detail in details), details


@pytest.mark.parametrize(
    ("raw", "kwargs", "message"),
    [
        ("ann@example.com", {"reason": "bored"}, "unknown reason 'bored'"),
        ("ann@example.com", {"kind": "person"}, "unknown kind 'person'"),
        ("co.uk", {}, "public suffix"),
        ("abc", {"kind": "account"}, "invalid account 'abc'"),
        ("0", {"kind": "account"}, "invalid account '0'"),
        ("exa mple.com", {}, "invalid domain"),
    ],
)
def test_make_spec_refuses_bad_entries(raw: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(raw, **kwargs)


def test_make_spec_refuses_a_naive_expiry() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        make_spec("ann@example.com", expires_at=NOW.replace(tzinfo=None))


def test_adding_twice_updates_one_row(engine: Engine, session: Session) -> None:
    first, change = add_entry(session, NOW, make_spec("ann@example.com"), "a")
    assert change == "added"
    _, change = add_entry(session, NOW, make_spec("ANN@example.com", note="again"), "b")
    assert change == "updated"
    _, change = add_entry(session, NOW, make_spec("ann@example.com", note="again"), "b")
    assert change == "kept"
    rows = all_entries(engine)
    assert [(r.id, r.value, r.note, r.added_by) for r in rows] == [
        (first.id, "ann@example.com", "again", "a")
    ]


def test_an_unsubscribe_is_never_weakened_by_add(engine: Engine, session: Session) -> None:
    unsubscribe(session, NOW, "ann@example.com", "one-click")
    later = NOW + timedelta(days=30)
    _, change = add_entry(session, NOW, make_spec("ann@example.com", reason="customer"), "x")
    assert change == "kept"
    _, change = add_entry(
        session, NOW, make_spec("ann@example.com", reason="unsubscribed", expires_at=later), "x"
    )
    assert change == "kept"
    (row,) = all_entries(engine)
    assert (row.reason, row.expires_at) == ("unsubscribed", None)


def test_remove(engine: Engine, session: Session) -> None:
    add(session, "example.com")
    assert remove_entry(session, "domain", "example.com") is True
    assert remove_entry(session, "domain", "example.com") is False
    assert all_entries(engine) == []


def test_unsubscribe_is_idempotent(engine: Engine, session: Session) -> None:
    first = unsubscribe(session, NOW, "Ann@Example.com", "one-click")
    again = unsubscribe(session, NOW + timedelta(hours=1), "ann@example.com", "reply")
    assert again.id == first.id
    (row,) = all_entries(engine)
    assert (row.kind, row.value, row.reason, row.added_by, row.added_at) == (
        "email",
        "ann@example.com",
        "unsubscribed",
        "one-click",
        NOW,
    )


def test_unsubscribe_is_recorded_over_an_existing_permanent_entry(engine: Engine, session: Session) -> None:
    add(session, "ann@example.com", reason="complaint")
    unsubscribe(session, NOW, "ann@example.com", "one-click")
    (row,) = all_entries(engine)
    assert (row.reason, row.added_by) == ("unsubscribed", "one-click")
    assert "earlier complaint entry" in row.note


def test_unsubscribe_makes_an_expiring_entry_permanent(engine: Engine, session: Session) -> None:
    add(session, "ann@example.com", reason="manual", expires_at=NOW - timedelta(days=1))
    assert find_suppression(session, NOW, "ann@example.com") is None
    later = NOW + timedelta(hours=2)
    unsubscribe(session, later, "ann@example.com", "one-click")
    (row,) = all_entries(engine)
    assert (row.reason, row.expires_at, row.added_by, row.added_at) == (
        "unsubscribed",
        None,
        "one-click",
        later,
    )
    assert find_suppression(session, later, "ann@example.com") is not None


def test_unsubscribe_refuses_a_garbage_address(engine: Engine, session: Session) -> None:
    with pytest.raises(ValueError, match="invalid email"):
        unsubscribe(session, NOW, "nobody", "one-click")
    assert all_entries(engine) == []


def test_unsubscribe_after_another_session_inserted_reads_it_back(engine: Engine) -> None:
    with open_session(engine) as first, open_session(engine) as second:
        unsubscribe(first, NOW, "ann@example.com", "one-click")
        entry = unsubscribe(second, NOW, "ann@example.com", "reply")
        assert entry.added_by == "one-click"
    assert len(all_entries(engine)) == 1


# --- the guard -----------------------------------------------------------------------


def context(
    session: Session, email: str, account: Account | None = None, channel: str = "email"
) -> TouchContext:
    prospect = Prospect(email=email, account_id=account.id if account else None)
    return TouchContext(
        session=session,
        now=NOW,
        settings=Settings(),
        enrollment=Enrollment(prospect_id=1, sequence_version_id=1, sequence_name="s"),
        prospect=prospect,
        account=account,
        step={},
        channel=channel,
        definition={},
        tick=TickState(session),
    )


def test_guard_lets_an_unsuppressed_prospect_through(session: Session) -> None:
    assert suppression_guard(context(session, "ann@example.com")).go


def test_guard_blocks_with_the_reason_and_entry(session: Session) -> None:
    add(session, "example.com", reason="competitor")
    verdict = suppression_guard(context(session, "ann@mail.example.com"))
    assert (verdict.action, verdict.guard) == ("block", "suppression")
    assert verdict.reason == "suppressed: competitor (domain example.com)"


def test_guard_blocks_on_the_account(session: Session) -> None:
    account = Account(id=5, domain="example.org")
    add(session, "5", kind="account", reason="customer")
    verdict = suppression_guard(context(session, "ann@example.org", account, channel="call"))
    assert verdict.reason == "suppressed: customer (account 5)"


def test_guard_blocks_email_to_a_garbage_address(session: Session) -> None:
    verdict = suppression_guard(context(session, "not an address"))
    assert verdict.action == "block"
    assert "unusable address" in verdict.reason


def test_guard_still_checks_the_account_for_other_channels(session: Session) -> None:
    account = Account(id=6, domain="example.org")
    assert suppression_guard(context(session, "garbage", account, channel="call")).go
    add(session, "6", kind="account", reason="do_not_contact")
    verdict = suppression_guard(context(session, "garbage", account, channel="call"))
    assert verdict.reason == "suppressed: do_not_contact (account 6)"
