"""What a sequence file may name: signal types, and the fields its templates read.

``sequences check`` refuses ``{{ prospect.frist_name }}`` or ``{{ sender.nme }}`` with the
template's file:line and the closest known name, instead of the touch being blocked at send
time. The fields a template sees are the ones ``context.values_of`` builds (so a field added
there is known here at once), ``context.SENDER_FIELDS``, and custom fields: declared
(``[prospects] custom_fields`` in sequencer.toml) or present in the stored prospects and
accounts. ``signal.*`` is not checked: a signal's payload is whatever its source sends, so
only the trigger's filters and the template know what a given signal type carries.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import TemplateSyntaxError, meta, nodes
from sqlmodel import Session, select

from sequencer.core.config import Settings
from sequencer.core.models import Account, Prospect
from sequencer.sequences import rendering
from sequencer.sequences.context import SENDER_FIELDS, values_of
from sequencer.sequences.signal_types import known_types
from sequencer.sequences.triggers import SIGNAL_TYPES

MAX_CUSTOM_FIELDS = 2000  # distinct custom field names read from stored data; more is not a schema


def _built_in() -> dict[str, frozenset[str]]:
    shape = values_of(Prospect(email=""), Account(domain=""))
    return {
        "prospect": frozenset(shape["prospect"]),
        "account": frozenset(shape["account"]),
        "sender": frozenset(SENDER_FIELDS),
        "sequence": frozenset({"name"}),
        "step": frozenset({"id"}),
    }


BUILT_IN_FIELDS = _built_in()
CUSTOMISABLE = ("prospect", "account")  # the roots with custom fields


@dataclass(frozen=True)
class Vocabulary:
    """The signal types and template fields one workspace knows."""

    signal_types: frozenset[str] = SIGNAL_TYPES
    custom: Mapping[str, frozenset[str]] = field(default_factory=dict)  # root -> custom field names

    def fields(self, root: str) -> frozenset[str]:
        return BUILT_IN_FIELDS[root] | self.custom.get(root, frozenset())

    def template_problems(self, source: str) -> list[tuple[int, str]]:
        """``(line, message)`` for every unknown field a template reads on a checked root."""
        try:
            ast = rendering.environment({}).parse(source)
        except TemplateSyntaxError:
            return []  # rendering.problems reports the syntax error
        free = meta.find_undeclared_variables(ast)  # a root the template assigns itself is its own
        found = []
        for line, root, name in _field_reads(ast):
            if root not in free or root not in BUILT_IN_FIELDS or name in self.fields(root):
                continue
            found.append((line, self._unknown(root, name)))
        return sorted(set(found))

    def _unknown(self, root: str, name: str) -> str:
        known = sorted(self.fields(root))
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        message = f"unknown field {root}.{name}{hint}; {root} has: {', '.join(known)}"
        if root in CUSTOMISABLE:
            message += (
                "; a custom field must be declared in sequencer.toml ([prospects] custom_fields) "
                "or present in imported prospects"
            )
        return message


def _field_reads(ast: nodes.Template) -> Iterator[tuple[int, str, str]]:
    """``prospect.first_name`` and ``prospect["first_name"]``: (line, root, field)."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.ctx != "load":
            continue
        if isinstance(node, nodes.Getattr):
            yield node.lineno, target.name, node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield node.lineno, target.name, node.arg.value


def stored_custom_fields(session: Session) -> dict[str, set[str]]:
    """Custom field names present in the stored prospects and accounts (at most MAX_CUSTOM_FIELDS each)."""
    found: dict[str, set[str]] = {"prospect": set(), "account": set()}
    for root, column in (("prospect", Prospect.custom), ("account", Account.custom)):
        for custom in session.exec(select(column).execution_options(yield_per=1000)):
            if isinstance(custom, dict):
                found[root].update(str(key) for key in custom)
            if len(found[root]) >= MAX_CUSTOM_FIELDS:
                break
    return found


def for_workspace(settings: Settings, templates: Path | None = None, session: Session | None = None) -> Vocabulary:
    """The workspace's vocabulary: declared signal types and custom fields, plus the stored data's
    custom fields when a session is given. ``SourceError`` when a declaration is malformed."""
    custom = {"prospect": set(map(str, settings.prospect_custom_fields)), "account": set()}
    if session is not None:
        for root, names in stored_custom_fields(session).items():
            custom[root] |= names
    return Vocabulary(
        signal_types=known_types(settings, templates),
        custom={root: frozenset(names) for root, names in custom.items()},
    )
