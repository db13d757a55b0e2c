"""Render step templates in a sandbox where a missing variable is an error, never a blank.

Empty prospect fields are left out of the context on purpose, so ``{{ prospect.first_name }}``
for a prospect without a first name fails loudly; a template that is happy with a fallback
says so with ``{{ prospect.first_name | default("there") }}``.

What is trusted: a template is written by the team and checked by ``sequences check``, so
its intent is trusted, but not its arithmetic on values that came from outside (a CSV
column, a signal payload) nor its loops over them. So every exception a render raises
becomes a ``RenderError`` naming the template, line and exception (the engine blocks that
one touch and pauses its enrollment for the SDR), and the work a render may do is bounded
by the sandbox it runs in (``sequences.sandbox``).
"""

from __future__ import annotations

import traceback
from typing import Any

from jinja2 import (
    DictLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    meta,
    nodes,
)

from sequencer.sequences.sandbox import _BUDGET, MAX_OUTPUT, TooMuchWork, _Bounded, _Budget

# The names a step template may use at the top level.
CONTEXT_NAMES = frozenset(
    {"prospect", "account", "signal", "sender", "sequence", "step", "unsubscribe_url"}
)


class RenderError(ValueError):
    """A template could not be rendered; the message names the template and the variable."""


class Fields(dict):
    """A context mapping that knows its own name (``prospect``), for error messages."""

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        super().__init__(values)
        self._fields_name = name


class _Missing(StrictUndefined):
    """Say ``missing variable prospect.first_name`` instead of ``'dict object' has no attribute``."""

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        if isinstance(owner, Fields):
            return f"missing variable {owner._fields_name}.{self._undefined_name} (empty or not set)"
        return super()._undefined_message


def environment(sources: dict[str, str]) -> _Bounded:
    """A bounded, sandboxed environment over a frozen set of template sources (a sequence version)."""
    return _Bounded(
        loader=_Sources(sources),
        undefined=_Missing,
        autoescape=False,
        keep_trailing_newline=False,
        finalize=_Bounded.finalize_output,
    )


class _Sources(DictLoader):
    """``DictLoader`` that names each template as its file name, so an error in an included
    template is reported in that template, not in the one that included it."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Any]:
        source, _, uptodate = super().get_source(environment, template)
        return source, template, uptodate


def render(sources: dict[str, str], name: str, context: dict[str, Any]) -> str:
    """Render template ``name`` (or inline source when ``name`` starts with ``=``).

    Any exception while compiling or rendering (a missing variable, ``"80" - 50``, a
    bound of this module) is a ``RenderError`` naming the template, its line and what
    went wrong; nothing else escapes.
    """
    label = "inline text" if name.startswith("=") else name
    budget = _BUDGET.set(_Budget())
    try:
        template = _compiled(sources, name)
        wrapped = {k: Fields(k, v) if isinstance(v, dict) else v for k, v in context.items()}
        parts, size = [], 0
        for part in template.generate(wrapped):
            size += len(part)
            if size > MAX_OUTPUT:
                raise TooMuchWork(f"the output is over {MAX_OUTPUT} characters")
            parts.append(part)
        return "".join(parts).strip()
    except TemplateSyntaxError as exc:  # an inline subject is compiled here, at its first render
        raise RenderError(f"{label}:{exc.lineno}: template syntax error: {exc.message}") from exc
    except Exception as exc:  # "80" - 50, 1 / 0, a recursive macro, a bound: the template's own mistake
        line = _template_line(exc)
        where = f"{_where(label, sources, exc)}{f':{line}' if line else ''}"
        what = (exc.message or str(exc)) if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"
        raise RenderError(f"{where}: {what}") from exc
    finally:
        _BUDGET.reset(budget)


_COMPILED: dict[tuple, Template] = {}
_COMPILED_LIMIT = 512


def _compiled(sources: dict[str, str], name: str) -> Template:
    """The compiled template, reused: a sequence version's sources never change.

    Compiling is most of the cost of rendering, and every touch of a version renders
    the same few templates.
    """
    key = (name, tuple(sorted(sources.items())))
    template = _COMPILED.get(key)
    if template is None:
        env = environment(sources)
        template = env.from_string(name[1:]) if name.startswith("=") else env.get_template(name)
        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.clear()
        _COMPILED[key] = template
    return template


def _template_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(exc.__traceback__)
            if f.name in ("top-level template code", "template") or f.name.startswith("block ")]


def _template_line(exc: BaseException) -> int | None:
    """The template line Jinja put into the rewritten traceback, when it did."""
    frames = _template_frames(exc)
    return frames[-1].lineno if frames else None


def _where(label: str, sources: dict[str, str], exc: BaseException) -> str:
    """The template the error happened in: an included one when it was there."""
    frames = _template_frames(exc)
    return frames[-1].filename if frames and frames[-1].filename in sources else label


def problems(source: str, label: str, sources: dict[str, str]) -> list[tuple[int, str]]:
    """Static problems in one template: syntax errors and unknown top-level variables.

    Returns ``(line, message)`` pairs; line is relative to the template text.
    """
    env = environment(sources)
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return [(exc.lineno or 1, f"template syntax error: {exc.message}")]
    found = []
    for name in sorted(meta.find_undeclared_variables(ast) - CONTEXT_NAMES):
        uses = (n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load")
        line = min(uses, default=1)
        found.append((line, f"undefined variable {name!r} (known: {', '.join(sorted(CONTEXT_NAMES))})"))
    return found


def referenced(source: str, sources: dict[str, str]) -> list[str]:
    """Templates pulled in by ``include``/``extends``/``import`` (unknown when dynamic)."""
    env = environment(sources)
    try:
        return [name for name in meta.find_referenced_templates(env.parse(source)) if name]
    except TemplateSyntaxError:
        return []


def present(values: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values so that a template using them fails instead of printing a blank."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}
