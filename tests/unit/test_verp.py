"""channels.verp: the per-touch return path carries a token only our secret can make."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels import verp

SECRET = "verp-unit-secret-0123456789abcdef"


def test_the_return_path_names_the_touch_and_reads_back_only_with_our_secret() -> None:
    address = verp.return_path("sam@outreach-acme.example", 2, SECRET)

    local, _, domain = address.partition("@")
    assert domain == "outreach-acme.example" and local.startswith("sam+t2-")
    assert local == local.lower() and len(local) <= verp.MAX_LOCAL_PART
    assert verp.touch_id_in_address(address, SECRET) == 2
    assert verp.touch_id_in_address(address.upper(), SECRET) == 2  # local parts get case-folded on the way
    assert verp.touch_id_in_address(address, "another-secret-0123456789abcdef") is None
    assert verp.touch_id_in_address(address, "") is None


@pytest.mark.parametrize("token", [
    "t2",  # the old unsigned format
    "t2-aaaaaaaaaa",  # a guessed MAC
    "t3-" + verp.token(2, SECRET).split("-")[1],  # a real MAC moved to another touch
    verp.token(2, SECRET)[:-1],  # truncated
    verp.token(2, SECRET) + "a",
    "t-1002", "", None,
])
def test_forged_altered_and_old_format_tokens_name_no_touch(token) -> None:
    assert verp.touch_id_of(token, SECRET) is None


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_every_touch_id_round_trips(touch_id: int) -> None:
    assert verp.touch_id_in_address(verp.return_path("bounces@mail.example", touch_id, SECRET), SECRET) == touch_id


def test_a_local_part_that_would_pass_64_octets_falls_back_to_the_plain_address() -> None:
    long_local = "s" * 40 + "@mail.example"
    assert verp.return_path(long_local, 12345678901234, SECRET) == long_local


def test_an_empty_secret_is_refused_rather_than_signing_with_it() -> None:
    with pytest.raises(ValueError, match="secret_key is empty"):
        verp.return_path("sam@outreach-acme.example", 2, "")
