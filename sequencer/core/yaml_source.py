"""YAML loading that remembers where each value came from, for ``file:line`` errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[Any, ...]


class SourceError(ValueError):
    """One or more problems in a source file; ``errors`` holds ``file:line: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors)  # args stay (errors,), so pickling rebuilds it intact
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(self.errors)


@dataclass
class YamlSource:
    """Parsed YAML data plus the line of every mapping key and list item."""

    path: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, *path: Any) -> int:
        """The line of ``path``, or of its nearest ancestor that has one (1 for the file)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    def where(self, *path: Any) -> str:
        return f"{self.path}:{self.line(*path)}"


def read_source(path: Path, what: str = "file") -> str:
    """The text of ``path``; an unreadable file is a ``SourceError`` naming it at line 1."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError([f"{path}:1: cannot read {what}: {exc}"]) from exc


def compose_yaml(text: str, filename: str | Path) -> yaml.Node | None:
    """The node tree of ``text``, every node with its line, for callers that check the
    document themselves (duplicate keys, tags); a syntax error is a ``SourceError``."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise SourceError([_syntax_error(filename, exc)]) from exc


def load_yaml(path: Path, text: str | None = None) -> YamlSource:
    """Parse ``path``; a syntax error becomes a ``SourceError`` naming file and line."""
    if text is None:
        text = read_source(path)
    node = compose_yaml(text, path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # well-formed, but a value SafeLoader cannot build
        raise SourceError([_syntax_error(path, exc)]) from exc
    source = YamlSource(path=path, data=data)
    if node is not None:
        _walk(node, (), source.lines)
    return source


def _syntax_error(filename: str | Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{filename}:{line}: YAML syntax error: {problem}"


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines)
