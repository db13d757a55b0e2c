"""Stored sequence versions: sync files into the database without rewriting history.

Loading a changed file adds a new version and marks it current; running enrollments keep
the version they started on. Loading an unchanged file is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sequencer.core.models import SequenceVersion
from sequencer.core.yaml_source import SourceError, load_yaml
from sequencer.sequences.files import content_hash, load_sequence, sequence_paths
from sequencer.sequences.vocabulary import Vocabulary


@dataclass
class SyncResult:
    name: str
    version: int
    changed: bool
    path: Path


def check_files(root: Path, vocabulary: Vocabulary | None = None) -> tuple[list[dict], list[str]]:
    """Validate every sequence under ``root``; return (definitions, all errors).

    ``vocabulary`` (``vocabulary.for_workspace``) holds the workspace's declared signal types
    and custom fields; without it only the built-in ones are known.
    """
    definitions, errors = [], []
    paths = sequence_paths(root)
    if not paths:
        errors.append(f"{root}:1: no sequence files (*.yaml) found")
    names: dict[str, Path] = {}
    for path in paths:
        try:
            definition = load_sequence(path, vocabulary)
        except SourceError as exc:
            errors.extend(exc.errors)
            continue
        if definition["name"] in names:
            errors.append(
                f"{load_yaml(path).where('name')}: sequence name {definition['name']!r} "
                f"is also used by {names[definition['name']]}"
            )
            continue
        names[definition["name"]] = path
        definition["source_path"] = str(path)
        definitions.append(definition)
    return definitions, errors


def sync(session: Session, now: datetime, root: Path, vocabulary: Vocabulary | None = None) -> list[SyncResult]:
    """Store every sequence under ``root`` as a version; refuse all of them if any is broken.

    Two processes syncing the same change at once both try to add the next version; the
    unique (name, version) key lets one win, and the other re-reads and finds it stored.
    """
    definitions, errors = check_files(root, vocabulary)
    if errors:
        raise SourceError(errors)
    try:
        return _store(session, now, definitions)
    except IntegrityError:
        session.rollback()
        definitions, _ = check_files(root, vocabulary)
        return _store(session, now, definitions)


def _store(session: Session, now: datetime, definitions: list[dict]) -> list[SyncResult]:
    results = []
    for definition in definitions:
        path = Path(definition.pop("source_path"))
        digest = content_hash(definition)
        current = current_version(session, definition["name"])
        if current is not None and current.content_hash == digest:
            results.append(SyncResult(definition["name"], current.version, False, path))
            continue
        if current is not None:
            current.is_current = False
            session.add(current)
        version = SequenceVersion(
            name=definition["name"],
            version=(current.version + 1) if current else 1,
            content_hash=digest,
            source_path=str(path),
            definition=definition,
            is_current=True,
            created_at=now,
        )
        session.add(version)
        results.append(SyncResult(definition["name"], version.version, True, path))
    session.commit()
    return results


def current_version(session: Session, name: str) -> SequenceVersion | None:
    return session.exec(
        select(SequenceVersion).where(SequenceVersion.name == name, SequenceVersion.is_current)
    ).first()


def current_versions(session: Session) -> list[SequenceVersion]:
    return list(
        session.exec(
            select(SequenceVersion).where(SequenceVersion.is_current).order_by(SequenceVersion.name)
        )
    )


def line_up_problem(old: dict, new: dict, current_step: int) -> str:
    """Why an enrollment at ``current_step`` of definition ``old`` cannot continue on ``new`` ("" when it can).

    The steps line up when the new version has the same step ids, of the same kinds, at and
    before the current step. Touches are stored by step position and id, and the current
    step's waiting state (a wait's due time, a task, a wait for a signal) belongs to its kind,
    so those must not move under a running enrollment; everything after the current step
    (a fixed text, a new last step, a removed one) may change freely.
    """
    old_steps, new_steps = old.get("steps", []), new.get("steps", [])
    if current_step >= len(new_steps):
        return f"it is at step {current_step + 1} and the new version has {len(new_steps)} step(s)"
    for index in range(min(current_step + 1, len(old_steps))):
        before, after = old_steps[index], new_steps[index]
        if before["id"] != after["id"]:
            return f"step {index + 1} is {before['id']!r} in its version and {after['id']!r} in the new one"
        if before["kind"] != after["kind"]:
            return (f"step {index + 1} ({before['id']!r}) is a {before['kind']} in its version "
                    f"and a {after['kind']} in the new one")
    return ""
