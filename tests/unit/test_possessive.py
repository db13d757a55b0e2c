"""Possessives in templates (#15): one filter, "Analytics'" and "Acme's", never "Analytics's"."""

from __future__ import annotations

import pytest

from sequencer.sequences.rendering import RenderError, render
from sequencer.sequences.sandbox import possessive

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "made"), [("Northwind Analytics", "Northwind Analytics'"), ("Acme", "Acme's"),
                                            ("GLOBEX SYSTEMS", "GLOBEX SYSTEMS'"), ("", "")])
def test_possessive(name: str, made: str) -> None:
    assert possessive(name) == made


def test_the_filter_in_a_template_and_a_missing_value_still_blocks() -> None:
    sources = {"t": "{{ account.name | possessive }} growth", "m": "{{ account.nothing | possessive }}"}

    assert render(sources, "t", {"account": {"name": "Northwind Analytics"}}) == "Northwind Analytics' growth"
    with pytest.raises(RenderError):
        render(sources, "m", {"account": {"name": "Acme"}})


def test_the_shipped_templates_make_possessives_with_it() -> None:
    from sequencer.core.config import REPO_TEMPLATES

    texts = [path.read_text() for path in REPO_TEMPLATES.rglob("*") if path.suffix in (".j2", ".yaml")]
    assert not any("}}'s" in text for text in texts)
    assert any("| possessive }}" in text for text in texts)
