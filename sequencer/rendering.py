"""Render step templates in a sandbox where a missing variable is an error, never a blank.

Empty prospect fields are left out of the context on purpose, so ``{{ prospect.first_name }}``
for a prospect without a first name fails loudly; a template that is happy with a fallback
says so with ``{{ prospect.first_name | default("there") }}``.
"""

from __future__ import annotations

from typing import Any

from jinja2 import DictLoader, StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

# The names a step template may use at the top level.
CONTEXT_NAMES = frozenset(
    {"prospect", "account", "signal", "sender", "sequence", "step", "unsubscribe_url"}
)


class RenderError(ValueError):
    """A template could not be rendered; the message names the template and the variable."""


def environment(sources: dict[str, str]) -> SandboxedEnvironment:
    """A sandboxed environment over a frozen set of template sources (a sequence version)."""
    return SandboxedEnvironment(
        loader=DictLoader(sources),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


def render(sources: dict[str, str], name: str, context: dict[str, Any]) -> str:
    """Render template ``name`` (or inline source when ``name`` starts with ``=``)."""
    env = environment(sources)
    try:
        template = env.from_string(name[1:]) if name.startswith("=") else env.get_template(name)
        return template.render(context).strip()
    except TemplateError as exc:
        label = "inline text" if name.startswith("=") else name
        raise RenderError(f"{label}: {exc.message or exc}") from exc


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
        line = next((i for i, text in enumerate(source.splitlines(), 1) if name in text), 1)
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
