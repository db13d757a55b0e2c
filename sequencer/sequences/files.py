"""Sequence files (``templates/sequences/*.yaml``): parse, validate, and freeze into a definition.

A definition is plain JSON-able data holding the steps *and the source of every template
they use*, so a stored sequence version renders the same way after the files change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sequencer.core.yaml_source import SourceError, YamlSource, load_yaml
from sequencer.sequences import rendering, schedule, triggers
from sequencer.sequences.signal_types import unknown_type
from sequencer.sequences.vocabulary import Vocabulary

TOUCH_KINDS = ("email", "manual_email", "call", "linkedin", "task")
STEP_KINDS = (*TOUCH_KINDS, "wait", "wait_for_signal")
WAIT_UNITS = ("hours", "days", "business_days")
LINKEDIN_ACTIONS = ("view", "connect", "message", "inmail")
_TOP_KEYS = {"name", "description", "owner", "trigger", "window", "mailboxes", "steps", "allow_overlap",
             "after_unknown"}
# After an email whose outcome is unknown (it may never have arrived), the next email starts a
# new thread (default) or replies on it anyway (reply).
AFTER_UNKNOWN = ("new_thread", "reply")
_STEP_KEYS = {
    "id", "kind", "subject", "template", "html_template", "variants", "new_thread", "title",
    "action", "signal", "timeout", "hours", "days", "business_days",
}


def sequence_paths(root: Path) -> list[Path]:
    """The sequence files under a templates root (or the single file given)."""
    if root.is_file():
        return [root]
    folder = root / "sequences" if (root / "sequences").is_dir() else root
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def steps_dir(sequence_path: Path) -> Path:
    """Step templates live in ``templates/steps`` beside ``templates/sequences``."""
    return sequence_path.parent.parent / "steps"


def load_sequence(path: Path, vocabulary: Vocabulary | None = None) -> dict[str, Any]:
    """Parse and validate one sequence file; raise ``SourceError`` listing every problem.

    ``vocabulary`` holds the workspace's signal types and template fields (built-ins only
    when not given).
    """
    vocabulary = vocabulary or Vocabulary()
    source = load_yaml(path)
    errors: list[str] = []
    data = source.data
    if not isinstance(data, dict):
        raise SourceError([f"{path}:1: a sequence file must be a mapping with name and steps"])
    for key in data:
        if key not in _TOP_KEYS:
            errors.append(f"{source.where(key)}: unknown key {key!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{source.where('name')}: 'name' is required")
    trigger = _trigger(source, errors, vocabulary)
    window = _window(source, errors)
    templates: dict[str, str] = {}
    steps = _steps(source, errors, templates, vocabulary)
    mailboxes = data.get("mailboxes", [])
    if not isinstance(mailboxes, list) or not all(isinstance(m, str) for m in mailboxes):
        errors.append(f"{source.where('mailboxes')}: 'mailboxes' must be a list of addresses")
    overlap = data.get("allow_overlap", False)
    if not isinstance(overlap, bool):
        errors.append(f"{source.where('allow_overlap')}: 'allow_overlap' must be true or false")
    after_unknown = data.get("after_unknown", "new_thread")
    if after_unknown not in AFTER_UNKNOWN:
        errors.append(f"{source.where('after_unknown')}: 'after_unknown' must be one of {', '.join(AFTER_UNKNOWN)}, "
                      f"not {after_unknown!r}")
    if errors:
        raise SourceError(errors)
    definition = {
        "name": name.strip(),
        "description": str(data.get("description", "")),
        "owner": str(data.get("owner", "")),
        "trigger": trigger,
        "window": window,
        "mailboxes": [m.strip().lower() for m in mailboxes],
        "steps": steps,
        "templates": templates,
        # Written only when set, so every stored sequence without it keeps its content hash.
        **({"allow_overlap": True} if overlap is True else {}),
        **({"after_unknown": after_unknown} if after_unknown != "new_thread" else {}),
    }
    return definition


def content_hash(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def _trigger(source: YamlSource, errors: list[str], vocabulary: Vocabulary) -> dict[str, Any]:
    raw = source.data.get("trigger") or {}
    if not isinstance(raw, dict):
        errors.append(f"{source.where('trigger')}: 'trigger' must be a mapping")
        return {}
    known = {"signals", "filters", "account_scope", "cooldown_days"}
    for key in raw:
        if key not in known:
            errors.append(f"{source.where('trigger', key)}: unknown trigger key {key!r}")
    signals = raw.get("signals", [])
    if isinstance(signals, str):
        signals = [signals]
    if not isinstance(signals, list):
        errors.append(f"{source.where('trigger', 'signals')}: 'signals' must be a list")
        signals = []
    for i, signal in enumerate(signals):
        if signal not in vocabulary.signal_types:
            errors.append(f"{source.where('trigger', 'signals', i)}: {unknown_type(signal, vocabulary.signal_types)}")
    filters = raw.get("filters") or {}
    if not isinstance(filters, dict):
        errors.append(f"{source.where('trigger', 'filters')}: 'filters' must be a mapping")
        filters = {}
    for field, spec in filters.items():
        for problem in triggers.validate_filter(str(field), spec):
            errors.append(f"{source.where('trigger', 'filters', field)}: {problem}")
    scope = raw.get("account_scope", "all")
    if scope not in triggers.ACCOUNT_SCOPES:
        errors.append(
            f"{source.where('trigger', 'account_scope')}: account_scope must be one of "
            f"{', '.join(triggers.ACCOUNT_SCOPES)}"
        )
    cooldown = raw.get("cooldown_days", 90)
    if not isinstance(cooldown, int) or isinstance(cooldown, bool) or cooldown < 0:
        errors.append(f"{source.where('trigger', 'cooldown_days')}: cooldown_days must be >= 0")
    return {"signals": signals, "filters": filters, "account_scope": scope, "cooldown_days": cooldown}


def _window(source: YamlSource, errors: list[str]) -> dict[str, Any]:
    try:
        return schedule.Window.parse(source.data.get("window")).to_dict()
    except (ValueError, AttributeError) as exc:
        errors.append(f"{source.where('window')}: bad window: {exc}")
        return schedule.Window().to_dict()


def _steps(source: YamlSource, errors: list[str], templates: dict[str, str], vocabulary: Vocabulary) -> list[dict]:
    raw_steps = source.data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        errors.append(f"{source.where('steps')}: 'steps' must be a non-empty list")
        return []
    steps: list[dict] = []
    seen_ids: set[str] = set()
    has_email = False
    for index, raw in enumerate(raw_steps):
        where = source.where("steps", index)
        if not isinstance(raw, dict):
            errors.append(f"{where}: a step must be a mapping with a 'kind'")
            continue
        kind = raw.get("kind")
        if kind not in STEP_KINDS:
            errors.append(
                f"{source.where('steps', index, 'kind')}: unknown step kind {kind!r} "
                f"(known: {', '.join(STEP_KINDS)})"
            )
            continue
        for key in raw:
            if key not in _STEP_KEYS:
                errors.append(f"{source.where('steps', index, key)}: unknown step key {key!r}")
        step_id = str(raw.get("id") or f"step-{index + 1}")
        if step_id in seen_ids:
            errors.append(f"{source.where('steps', index, 'id')}: duplicate step id {step_id!r}")
        seen_ids.add(step_id)
        step: dict[str, Any] = {"index": index, "id": step_id, "kind": kind}
        if kind == "wait":
            step["wait"] = _wait(source, ("steps", index), raw, errors)
        elif kind == "wait_for_signal":
            signal = raw.get("signal")
            if signal not in vocabulary.signal_types:
                problem = unknown_type(signal, vocabulary.signal_types)
                errors.append(f"{source.where('steps', index, 'signal')}: {problem}")
            step["signal"] = signal
            timeout = raw.get("timeout")
            if not isinstance(timeout, dict):
                errors.append(f"{where}: wait_for_signal needs a timeout, e.g. {{business_days: 5}}")
                step["timeout"] = {"hours": 0}
            else:
                step["timeout"] = _wait(source, ("steps", index, "timeout"), timeout, errors)
        else:
            _touch_step(source, index, raw, step, errors, templates, has_email, vocabulary)
            has_email = has_email or kind == "email"
        steps.append(step)
    return steps


def _wait(source: YamlSource, path: tuple, raw: dict, errors: list[str]) -> dict[str, float]:
    units = {unit: raw[unit] for unit in WAIT_UNITS if unit in raw}
    if len(units) != 1:
        errors.append(f"{source.where(*path)}: a wait needs exactly one of {', '.join(WAIT_UNITS)}")
        return {"hours": 0}
    (unit, value), = units.items()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        errors.append(f"{source.where(*path, unit)}: bad wait {unit}: {value!r} (a positive number)")
        return {"hours": 0}
    if unit == "business_days" and int(value) != value:
        errors.append(f"{source.where(*path, unit)}: business_days must be a whole number")
    return {unit: value}


def _touch_step(
    source: YamlSource,
    index: int,
    raw: dict,
    step: dict,
    errors: list[str],
    templates: dict[str, str],
    has_email: bool,
    vocabulary: Vocabulary,
) -> None:
    kind = step["kind"]
    base = steps_dir(source.path)
    variants_raw = raw.get("variants")
    if variants_raw is not None and kind != "email":
        errors.append(f"{source.where('steps', index, 'variants')}: only email steps have variants")
    if isinstance(variants_raw, list) and variants_raw:
        variants = []
        for v_index, variant in enumerate(variants_raw):
            path = ("steps", index, "variants", v_index)
            if not isinstance(variant, dict) or "template" not in variant:
                errors.append(f"{source.where(*path)}: a variant needs name, weight and template")
                continue
            weight = variant.get("weight", 1)
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
                errors.append(f"{source.where(*path, 'weight')}: weight must be a positive number")
            variants.append(
                {
                    "name": str(variant.get("name", chr(ord("A") + v_index))),
                    "weight": weight,
                    "subject": variant.get("subject", raw.get("subject")),
                    "template": variant["template"],
                }
            )
    elif variants_raw is not None:
        errors.append(f"{source.where('steps', index, 'variants')}: variants must be a non-empty list")
        variants = []
    else:
        variants = [{"name": "", "weight": 1, "subject": raw.get("subject"), "template": raw.get("template")}]
    step["variants"] = variants
    step["new_thread"] = bool(raw.get("new_thread", False))
    step["title"] = str(raw.get("title", ""))
    if kind == "linkedin":
        action = raw.get("action", "message")
        if action not in LINKEDIN_ACTIONS:
            errors.append(
                f"{source.where('steps', index, 'action')}: unknown LinkedIn action {action!r} "
                f"(known: {', '.join(LINKEDIN_ACTIONS)})"
            )
        step["action"] = action
    for v_index, variant in enumerate(variants):
        path = ("steps", index, "variants", v_index) if variants_raw else ("steps", index)
        template = variant.get("template")
        if template is None:
            if kind in ("email", "manual_email"):
                errors.append(f"{source.where(*path)}: an {kind} step needs a template")
            continue
        _collect_template(source, (*path, "template"), str(template), base, templates, errors, vocabulary)
        subject = variant.get("subject")
        if kind in ("email", "manual_email"):
            if subject is None and (step["new_thread"] or not has_email):
                errors.append(
                    f"{source.where(*path)}: the first email of a thread needs a subject"
                )
            if subject is not None:
                found = rendering.problems(str(subject), "subject", templates)
                for _line, problem in found + vocabulary.template_problems(str(subject)):
                    errors.append(f"{source.where(*path, 'subject')}: subject: {problem}")
    html = raw.get("html_template")
    if html is not None:
        _collect_template(source, ("steps", index, "html_template"), str(html), base, templates, errors,
                          vocabulary)
        step["html_template"] = str(html)


def _collect_template(
    source: YamlSource,
    path: tuple,
    name: str,
    base: Path,
    templates: dict[str, str],
    errors: list[str],
    vocabulary: Vocabulary,
) -> None:
    """Read template ``name`` and everything it includes into ``templates``, checking each."""
    pending = [(name, source.where(*path), None)]
    while pending:
        current, where, parent = pending.pop()
        if current in templates:
            continue
        file = (base / current).resolve()
        if base.resolve() not in file.parents:
            errors.append(f"{where}: template {current!r} is outside {base}")
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            origin = f" (included from {parent})" if parent else ""
            errors.append(f"{where}: unknown template {current!r}{origin}: no file {file}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{where}: cannot read template {current!r}: {exc}")
            continue
        templates[current] = text
        for line, problem in rendering.problems(text, current, templates) + vocabulary.template_problems(text):
            errors.append(f"{file}:{line}: {problem}")
        for child in rendering.referenced(text, templates):
            pending.append((child, f"{file}:1", current))
