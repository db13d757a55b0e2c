"""Which signal types exist: the built-ins plus the ones a team declares for itself.

A team names its own types (``webinar_attended``, ``pricing_page``) in ``sequencer.toml``
(``[signals] types = [...]``) or in ``signals.yaml`` beside its templates::

    types:
      - webinar_attended
      - pricing_page

Sequence files (triggers, ``wait_for_signal``) and signal intake (``signals import``, the
HTTP API) ask ``known_types`` the same question, so a type is either usable everywhere or
refused everywhere with the same list of the declared ones.
"""

from __future__ import annotations

import re
from pathlib import Path

from sequencer.core.config import Settings
from sequencer.core.yaml_source import SourceError, load_yaml
from sequencer.sequences.triggers import SIGNAL_TYPES

SIGNALS_FILE = "signals.yaml"
MAX_TYPES = 500  # a team has tens; more is a generated file gone wrong
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # what a trigger, a JSONL line and a metric can all carry


def signals_file(templates_dir: Path) -> Path:
    """``signals.yaml`` beside the sequences: in the templates folder (or beside a single file)."""
    root = templates_dir.parent if templates_dir.is_file() else templates_dir
    return root / SIGNALS_FILE


def read_signals_file(path: Path) -> list[str]:
    """The types a ``signals.yaml`` declares; ``SourceError`` with every bad entry as file:line."""
    source = load_yaml(path)
    data = source.data
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {"types"}:
        raise SourceError([f"{path}:1: signals.yaml must be a mapping with one key, types: [name, ...]"])
    types = data["types"]
    if not isinstance(types, list):
        raise SourceError([f"{source.where('types')}: types must be a list of names"])
    if len(types) > MAX_TYPES:
        raise SourceError([f"{source.where('types')}: {len(types)} types; at most {MAX_TYPES}"])
    errors = [f"{source.where('types', i)}: {problem}" for i, name in enumerate(types)
              if (problem := name_problem(name))]
    if errors:
        raise SourceError(errors)
    return list(types)


def name_problem(name: object) -> str:
    """Why ``name`` cannot be a signal type ("" when it can)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"bad signal type {name!r}: lower-case letters, digits and _, starting with a letter (at most 64)"
    return ""


def known_types(settings: Settings, templates: Path | None = None) -> frozenset[str]:
    """Built-in, ``[signals] types`` and ``signals.yaml`` types; ``SourceError`` names a bad declaration.

    ``signals.yaml`` is read beside ``templates`` (default: the settings' templates folder).
    """
    errors = [f"{settings.source}: [signals] types: {problem}"
              for name in settings.signal_types if (problem := name_problem(name))]
    if errors:
        raise SourceError(errors)
    path = signals_file(Path(templates or settings.templates_dir))
    declared = read_signals_file(path) if path.is_file() else []
    return SIGNAL_TYPES | frozenset(settings.signal_types) | frozenset(declared)


def unknown_type(name: object, known: frozenset[str]) -> str:
    """The one message for a type nobody declared, listing the declared ones and where to add it."""
    custom = sorted(known - SIGNAL_TYPES)
    listed = ", ".join(sorted(SIGNAL_TYPES)) + (f"; declared: {', '.join(custom)}" if custom else "")
    return (f"unknown signal type {name!r} (known: {listed}; declare your own in sequencer.toml "
            f"[signals] types or {SIGNALS_FILE})")
