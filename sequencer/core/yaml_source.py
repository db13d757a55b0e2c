"""YAML loading that remembers where each value came from, for ``file:line`` errors.

Sequence and rules files are written by people, but they are still input: a file may be
handed over, pasted or generated. So reading one is bounded. Aliases are counted as what
they stand for (a "billion laughs" file of a few hundred bytes expands to a billion
nodes), nesting is limited, and an alias that refers to its own ancestor (a recursive
structure) is refused; each refusal names the line. Only plain YAML values are built
(PyYAML's SafeLoader: no ``!!python`` tags).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

Path_ = tuple[Any, ...]

MAX_BYTES = 1024 * 1024  # a sequence or rules file is a few KB; a megabyte is not a mistake to read
MAX_NODES = 20_000  # every value, an alias counted as the nodes it stands for
MAX_DEPTH = 50  # mappings and lists inside each other; the shipped files use six


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
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SourceError([f"{path}:1: cannot read {what}: {size} bytes is over the limit of {MAX_BYTES}"])
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError([f"{path}:1: cannot read {what}: {exc}"]) from exc


class _Refused(ComposerError):
    """Well-formed YAML that is refused: over a bound, or recursive."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer counts what the document expands to, and refuses too much.

    PyYAML composes an alias as a second reference to the anchored node, so the node tree
    stays small while anything that walks it (or the data built from it) does the full
    expansion. The count here is of that expansion, kept per anchored node, so it is
    exact and costs one addition per alias.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded = 0  # nodes so far, aliases counted as their expansion
        self._sizes: dict[int, int] = {}  # id(anchored node) -> its expansion
        self._open: set[str] = set()  # anchors of the nodes being composed (ancestors)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _Refused(None, None, f"alias *{event.anchor} refers to a value that contains it "
                                    "(a recursive structure)", event.start_mark)
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event.start_mark)
            return node
        if self._depth >= MAX_DEPTH:
            raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        start = self._expanded
        self._count(1, event.start_mark)
        if event.anchor is not None:
            self._open.add(event.anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(event.anchor)
        if event.anchor is not None:
            self._sizes[id(node)] = self._expanded - start
        return node

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            raise _Refused(None, None, f"the document expands to more than {MAX_NODES} values "
                                "(too many aliases or values)", mark)


def compose_yaml(text: str, filename: str | Path) -> yaml.Node | None:
    """The node tree of ``text``, every node with its line, for callers that check the
    document themselves (duplicate keys, tags); a syntax error, or a document over the
    bounds above, is a ``SourceError``."""
    return _compose(text, filename)[0]


def _compose(text: str, filename: str | Path) -> tuple[yaml.Node | None, _BoundedLoader]:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node(), loader
    except yaml.YAMLError as exc:
        raise SourceError([_syntax_error(filename, exc)]) from exc
    finally:
        loader.dispose()


def load_yaml(path: Path, text: str | None = None) -> YamlSource:
    """Parse ``path``; a syntax error, a duplicate key or a value SafeLoader will not build
    (a ``!!python`` tag) becomes a ``SourceError`` naming file and line."""
    if text is None:
        text = read_source(path)
    node, loader = _compose(text, path)
    source = YamlSource(path=path, data=None)
    if node is None:
        return source
    errors: list[str] = []
    _walk(node, (), source.lines, errors, str(path))
    if errors:
        raise SourceError(errors)
    try:
        source.data = loader.construct_document(node)  # the same, bounded tree: the text is parsed once
    except ConstructorError as exc:
        raise SourceError([_construct_error(path, exc)]) from exc
    except yaml.YAMLError as exc:
        raise SourceError([_syntax_error(path, exc)]) from exc
    return source


def _construct_error(filename: str | Path, exc: ConstructorError) -> str:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    problem = exc.problem or str(exc)
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip(" '")
        tag = tag.replace("tag:yaml.org,2002:", "!!")
        return f"{filename}:{line}: tag {tag} is not allowed: only plain YAML values (text, numbers, lists, mappings)"
    return f"{filename}:{line}: YAML error: {problem}"


def _syntax_error(filename: str | Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _Refused):
        return f"{filename}:{line}: YAML refused: {problem}"
    return f"{filename}:{line}: YAML syntax error: {problem}"


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], errors: list[str], filename: str) -> None:
    """Record the line of every key and item; report duplicate keys (YAML would keep the last
    silently, so a file that sets ``name`` twice would lose the first without a word)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":  # "<<" merges a mapping in; repeating it is allowed
                errors.append(f"{filename}:{line}: duplicate key {key!r} (first at line {seen[key]})")
            seen.setdefault(key, line)
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, errors, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, errors, filename)
