"""Read a manager's rules file into a ``RuleBook``, with every mistake as ``file:line: message``.

The file is validated as a whole (``book`` documents its shape): a file with any mistake
is refused with all of them listed, and nothing is half-loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from sequencer.core.yaml_source import SourceError, compose_yaml, read_source
from sequencer.rules import law
from sequencer.rules.book import ACTIONS, BOUNCE_REASONS, EVENTS, Action, Ignore, RuleBook, RulesError

_SUPPRESS_REASONS = {
    "bounce": "hard_bounce",
    "complaint": "complaint",
    "unsubscribe_request": "unsubscribed",
}

_UNREADABLE = object()  # a scalar whose error is already reported; report nothing more about it

# parameter -> (accepted types, minimum, required); bool is refused even though it is an int
_PARAMS: dict[str, dict[str, tuple[tuple[type, ...], float | None, bool]]] = {
    "pause_until_return": {
        "plus_business_days": ((int,), 0, False),
        "default_days": ((int,), 0, False),
    },
    "suppress": {"expires_after_days": ((int,), 1, False), "reason": ((str,), None, False)},
    "pause_mailbox_after": {"blocks": ((int,), 1, False)},
    "retry": {"max_attempts": ((int,), 1, False), "backoff_hours": ((int, float), 0, False)},
    "enroll": {"sequence": ((str,), None, True)},
}

# actions that only make sense for some events; absent = any event
_ONLY_FOR: dict[str, set[str]] = {
    "pause_until_return": {"out_of_office", "auto_reply"},
    "retry": {"bounce", "bounce.soft", "bounce.block"},
    "pause_mailbox_after": {"bounce", "bounce.block"},
}
# ... and for the bounce reasons of these types (bounce.mailbox_full: [retry]); the error does not list them all
_ONLY_FOR_REASONS: dict[str, set[str]] = {"retry": {"soft", "block"}, "pause_mailbox_after": {"block"}}


def load_rules(path: Path | None, *, known_sequences: set[str] | None = None) -> RuleBook:
    """Load and validate ``path``; ``None`` means the built-in defaults.

    With ``known_sequences``, sequence names (override keys and ``enroll`` targets) are
    checked too, so a typo is caught when the file is loaded rather than at the first reply.
    """
    if path is None:
        return RuleBook({}, {})
    try:
        text = read_source(path, "rules file")
    except SourceError as exc:
        raise RulesError(exc.errors) from exc
    return parse_rules(text, str(path), known_sequences=known_sequences)


def parse_rules(
    text: str, filename: str = "<rules>", *, known_sequences: set[str] | None = None
) -> RuleBook:
    """Validate rules given as text; ``filename`` is only used in error messages.

    The text is read and composed by ``sequencer.core.yaml_source`` (as sequence files
    are); the node tree is walked here, so duplicate keys and unreadable values are
    reported with their lines too, each as one error among all the file's errors.
    """
    try:
        root = compose_yaml(text, filename)
    except SourceError as exc:
        raise RulesError(exc.errors) from exc
    parser = _Parser(filename, known_sequences)
    book = parser.book(root)
    if parser.errors:
        raise RulesError(parser.errors)
    unlawful = law.violations(book, filename, parser.lines)  # on a well-formed file only: fix the shape first
    if unlawful:
        raise RulesError(unlawful)
    return book


class _Parser:
    """Walks the YAML node tree so every error can name its line; collects, never stops."""

    def __init__(self, filename: str, known_sequences: set[str] | None) -> None:
        self.filename = filename
        self.known_sequences = known_sequences
        self.errors: list[str] = []
        self.lines: dict[str, int] = {}  # rule name (and "rule#action") -> line, for sequencer.rules.law
        self._constructor = SafeConstructor()

    def error(self, node: yaml.Node, message: str) -> None:
        self.errors.append(f"{self.filename}:{node.start_mark.line + 1}: {message}")

    def book(self, root: yaml.Node | None) -> RuleBook:
        defaults: dict[str, tuple[Action, ...]] = {}
        sequences: dict[str, dict[str, tuple[Action, ...]]] = {}
        if root is None:
            return RuleBook(defaults, sequences, self.filename)
        for key, key_node, value in self.mapping(root, "the rules file"):
            if key == "defaults":
                defaults = self.event_rules(value, "defaults")
            elif key == "sequences":
                for name, name_node, rules in self.mapping(value, "sequences"):
                    if self.known_sequences is not None and name not in self.known_sequences:
                        self.error(name_node, f"sequences: unknown sequence {name!r}")
                    sequences[name] = self.event_rules(rules, f"sequences.{name}")
            else:
                self.error(
                    key_node, f"unknown top-level key {key!r} (expected defaults, sequences)"
                )
        return RuleBook(defaults, sequences, self.filename)

    def mapping(self, node: yaml.Node, what: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """Yield (key, key node, value node); reports non-mappings and duplicate keys."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return  # "defaults:" with nothing under it is an empty section, not a mistake
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping")
            return
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is _UNREADABLE:
                continue
            if not isinstance(key, str):
                self.error(key_node, f"{what}: keys must be text")
                continue
            if key in seen:
                self.error(key_node, f"{what}: duplicate key {key!r}")
                continue
            seen.add(key)
            yield key, key_node, value_node

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return node
        try:
            return self._constructor.construct_object(node)
        except ConstructorError as exc:
            self.error(node, f"cannot read value: {exc.problem}")
            return _UNREADABLE

    def event_rules(self, node: yaml.Node, scope: str) -> dict[str, tuple[Action, ...]]:
        rules: dict[str, tuple[Action, ...]] = {}
        for key, key_node, value in self.mapping(node, scope):
            if self.event_key(key, key_node, scope):
                self.lines[f"{scope}.{key}"] = key_node.start_mark.line + 1
                actions = self.actions(value, f"{scope}.{key}", key)
                if actions is not None:
                    rules[key] = actions
        return rules

    def event_key(self, key: str, node: yaml.Node, scope: str) -> bool:
        event, _, qualifier = key.partition(".")
        if event not in EVENTS:
            self.error(node, f"{scope}: unknown event {event!r} (known: {', '.join(EVENTS)})")
            return False
        if qualifier and qualifier not in EVENTS[event]:
            allowed = ", ".join(EVENTS[event]) or "none"
            self.error(
                node, f"{scope}: unknown {event} qualifier {qualifier!r} (allowed: {allowed})"
            )
            return False
        return True

    def actions(self, node: yaml.Node, rule: str, key: str) -> tuple[Action, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{rule}: must be a list of actions, e.g. [stop]")
            return None
        if not node.value:
            self.error(node, f"{rule}: empty action list (write [ignore] to do nothing)")
            return None
        actions: list[Action] = []
        for item in node.value:
            action = self.action(item, rule, key)
            if action is None:
                continue
            self.lines[f"{rule}#{action.name}"] = item.start_mark.line + 1
            if any(a.name == action.name for a in actions):
                self.error(item, f"{rule}: action {action.name!r} listed twice")
            actions.append(action)
        if len(node.value) > 1 and any(isinstance(a, Ignore) for a in actions):
            self.error(node, f"{rule}: ignore cannot be combined with other actions")
        return tuple(actions)

    def action(self, node: yaml.Node, rule: str, key: str) -> Action | None:
        params: dict[str, Any] = {}
        if isinstance(node, yaml.ScalarNode):
            name = self.scalar(node)
        elif isinstance(node, yaml.MappingNode) and len(node.value) == 1:
            name_node, params_node = node.value[0]
            name = self.scalar(name_node)
            params = self.params(params_node, rule, str(name))
        else:
            self.error(node, f"{rule}: an action is a name or a one-key mapping {{name: {{...}}}}")
            return None
        if name is _UNREADABLE:
            return None
        if name not in ACTIONS:
            self.error(node, f"{rule}: unknown action {name!r} (known: {', '.join(ACTIONS)})")
            return None
        allowed_for = _ONLY_FOR.get(name)
        reason = key.partition(".")[2] if key.startswith("bounce.") else ""
        if reason in BOUNCE_REASONS and BOUNCE_REASONS[reason] in _ONLY_FOR_REASONS.get(name, set()):
            allowed_for = None
        if allowed_for is not None and key not in allowed_for:
            self.error(node, f"{rule}: {name} only applies to {', '.join(sorted(allowed_for))}")
        ok = True
        spec = _PARAMS.get(name, {})
        for param, (param_node, value) in params.items():
            if param not in spec:
                known = ", ".join(spec) or "none"
                self.error(
                    param_node, f"{rule}: {name}: unknown parameter {param!r} (known: {known})"
                )
                ok = False
                continue
            ok = self.check_param(param_node, value, spec[param], f"{rule}: {name}.{param}") and ok
        for param, (_, _, required) in spec.items():
            if required and param not in params:
                self.error(node, f"{rule}: {name} needs {param!r}")
                ok = False
        if not ok:
            return None
        values = {param: value for param, (_, value) in params.items()}
        if name == "suppress" and "reason" not in values:
            values["reason"] = _SUPPRESS_REASONS.get(key.partition(".")[0], "manual")
        known = self.known_sequences
        if name == "enroll" and known is not None and values["sequence"] not in known:
            self.error(
                params["sequence"][0], f"{rule}: enroll: unknown sequence {values['sequence']!r}"
            )
        return ACTIONS[name](**values)

    def params(self, node: yaml.Node, rule: str, name: str) -> dict[str, tuple[yaml.Node, Any]]:
        result: dict[str, tuple[yaml.Node, Any]] = {}
        for param, _param_node, value_node in self.mapping(node, f"{rule}: {name}"):
            if not isinstance(value_node, yaml.ScalarNode):
                self.error(value_node, f"{rule}: {name}.{param} must be a single value")
                continue
            value = self.scalar(value_node)
            if value is not _UNREADABLE:
                result[param] = (value_node, value)
        return result

    def check_param(
        self,
        node: yaml.Node,
        value: Any,
        spec: tuple[tuple[type, ...], float | None, bool],
        where: str,
    ) -> bool:
        types, minimum, _ = spec
        if isinstance(value, bool) or not isinstance(value, types):
            kind = "a whole number" if types == (int,) else "a number" if int in types else "text"
            self.error(node, f"{where} must be {kind}, got {value!r}")
            return False
        if minimum is not None and value < minimum:
            self.error(node, f"{where} must be at least {minimum}, got {value!r}")
            return False
        if isinstance(value, str) and not value.strip():
            self.error(node, f"{where} must not be empty")
            return False
        return True
