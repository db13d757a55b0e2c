"""The bounded sandbox a step template runs in: Jinja's sandbox plus limits on the work a render may do.

A template's intent is trusted (the team writes it and ``sequences check`` reads it), but
not its arithmetic on values that came from outside (a CSV column, a signal payload) nor
its loops over them, so ``_Bounded`` allows at most ``MAX_OUTPUT`` characters of output,
``MAX_RANGE`` items per ``range()``, and ``MAX_WORK`` steps in all (a loop iteration, a
call, a character or item built by an operator, a call or a filter). What would build a
huge value in one step (``"x" * n``, ``2 ** n``, ``"%0999999d"``, ``"x".ljust(n)``,
``"s" | indent(n)``, ``replace``) is measured before it is done. Going over a bound raises
``TooMuchWork``, which ``rendering.render`` reports as a ``RenderError``.
"""

from __future__ import annotations

import functools
import re
import string
import types
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

MAX_OUTPUT = 100_000  # characters one template may produce; an email body is a few thousand
MAX_RANGE = 10_000  # items one range() may produce
MAX_WORK = 1_000_000  # steps one render may take: well under a second of Jinja
MAX_INT_BITS = 4096  # integers a template may build (a 1,233-digit number)


class TooMuchWork(SecurityError):
    """A render went over one of the bounds above."""


class _Budget:
    """The steps left to one render (``MAX_WORK``)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_WORK

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise TooMuchWork(f"the template does too much work (over {MAX_WORK} steps: loops, calls, values built)")


_BUDGET: ContextVar[_Budget | None] = ContextVar("render_budget", default=None)


def _spend(steps: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:  # render() sets one; parsing and checking render nothing
        budget.spend(steps)


_CONTAINERS = (list, tuple, set, frozenset)


def _deep_size(value: Any, limit: int) -> int:
    """Characters and items in ``value``, nested ones included, counted up to just past ``limit``.

    A list holding itself twice, forty times over, is small in memory and a trillion items
    when printed; counting stops at the limit, so measuring it costs at most ``limit`` steps.
    """
    total = 0
    pending: list[Iterator[Any]] = [iter((value,))]
    while pending:
        item = next(pending[-1], _END)
        if item is _END:
            pending.pop()
            continue
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, _CONTAINERS):
            total += 1
            pending.append(iter(item))
        elif isinstance(item, dict):
            total += 1
            pending.append(iter(item.items()))
        else:  # a number, an Undefined, a generator (never consumed here)
            total += 1
        if total > limit:
            break
    return total


_END = object()


def _measured(value: Any, what: str) -> Any:
    """Count ``value`` against the budget; refuse one whose printed form is too large to send.

    Every value entering or leaving an operator, a call, a filter, a ``~`` or the output
    passes here, so nothing is printed or joined that was not measured first.
    """
    size = _deep_size(value, MAX_OUTPUT)
    if size > MAX_OUTPUT:
        raise TooMuchWork(f"{what}: a value of over {MAX_OUTPUT} characters or items")
    _spend(size)
    return value


def _at_most(amount: int, what: str) -> None:
    """Refuse, before doing it, work that would build more than ``MAX_OUTPUT``."""
    if amount > MAX_OUTPUT:
        raise TooMuchWork(f"{what} would build {amount} characters or items (the limit is {MAX_OUTPUT})")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(fmt: str, args: Any) -> None:
    """``"%0999999d" % 1``: widths and precisions of a ``%`` format, before it is applied."""
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for number in (width, precision):
            if number == "*":
                values = args if isinstance(args, tuple) else (args,)
                for value in values:
                    if isinstance(value, int):
                        _at_most(abs(value), "a '%' format width")
            elif number:
                _at_most(int(number), "a '%' format width")


def _check_brace_format(fmt: str, args: tuple, kwargs: dict) -> None:
    """``"{:>999999}".format(x)``: widths in ``str.format`` specs, before it is applied."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _literal, _field, spec, _conversion in fields:
        if not spec:
            continue
        for number in re.findall(r"\d+", spec):
            _at_most(int(number), "a format width")
        if "{" in spec:  # a nested width: {:{w}}
            for value in (*args, *kwargs.values()):
                if isinstance(value, int):
                    _at_most(abs(value), "a format width")


def _check_str_method(text: str, method: str, args: tuple, kwargs: dict) -> None:
    """The ``str`` methods that can build much more than they are given."""
    if method in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _at_most(args[0], f"str.{method}")
    elif method == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            _at_most(size * text.count("\t") + len(text), "str.expandtabs")
    elif method == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = text.count(args[0]) if args[0] else len(text) + 1
        _at_most(len(text) + count * len(args[1]), "str.replace")
    elif method == "join" and args and isinstance(args[0], _CONTAINERS):
        _at_most(len(text) * len(args[0]), "str.join")
    elif method in ("format", "format_map"):
        _check_brace_format(text, args, kwargs)


def _check_filter(name: str, value: Any, args: tuple, kwargs: dict) -> None:
    """The built-in filters that can build much more than they are given."""
    def arg(index: int, keyword: str, default: Any) -> Any:
        return args[index] if len(args) > index else kwargs.get(keyword, default)

    if name == "center":
        width = arg(0, "width", 80)
        if isinstance(width, int):
            _at_most(width, "the center filter")
    elif name == "indent" and isinstance(value, str):
        width = arg(0, "width", 4)
        per_line = width if isinstance(width, int) else len(str(width))
        _at_most(len(value) + per_line * (value.count("\n") + 1), "the indent filter")
    elif name == "replace" and isinstance(value, str):
        old, new = str(arg(0, "old", "")), str(arg(1, "new", ""))
        count = value.count(old) if old else len(value) + 1
        _at_most(len(value) + count * len(new), "the replace filter")
    elif name == "join" and isinstance(value, _CONTAINERS):
        _at_most(len(str(arg(0, "d", ""))) * len(value), "the join filter")
    elif name in ("batch", "slice"):
        count = arg(0, "linecount" if name == "batch" else "slices", 1)
        if isinstance(count, int):
            _at_most(count, f"the {name} filter")
    elif name == "format" and isinstance(value, str):
        _check_percent_format(value, args or tuple(kwargs.values()))
    elif name == "wordwrap":
        width = arg(0, "width", 79)
        if isinstance(width, int):
            _at_most(width, "the wordwrap filter")


def _bounded_filter(name: str, func: Any) -> Any:
    """``func`` with its output measured (and its amplifying arguments checked first)."""
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the environment or context comes first

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja still passes what it passed
    def bounded(*args: Any, **kwargs: Any) -> Any:
        what = f"the {name} filter"
        for value in (*args[skip:], *kwargs.values()):
            _measured(value, what)
        if len(args) > skip:
            _check_filter(name, args[skip], args[skip + 1:], kwargs)
        return _measured(func(*args, **kwargs), what)

    return bounded


def possessive(name: Any) -> str:
    """``{{ account.name | possessive }}``: "Acme's", and "Northwind Analytics'" for a name that
    ends in s (the one place templates make possessives). A missing value fails as printing it would."""
    text = str(name)
    if not text:
        return text
    return text + ("'" if text[-1] in "sS" else "'s")


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if not all(isinstance(v, int) for v in (n, min, max)) or n > 100 or max > 1000:
        raise TooMuchWork("lipsum() takes at most 100 paragraphs of at most 1000 words")
    return generate_lorem_ipsum(n, html, min, max)


def _bounded_range(*args: int) -> range:
    """A real ``range`` (``length``, indexing and ``in`` work); loops over it count their
    iterations like every other loop."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TooMuchWork(f"range() of {len(numbers)} items (the limit is {MAX_RANGE})")
    return numbers


class _Bounded(ImmutableSandboxedEnvironment):
    """Jinja's sandbox (no unsafe attributes, no changing lists or dicts in place) plus the
    bounds of this module: operators, calls and filters are measured, every ``for`` loop
    counts its iterations, and every ``~`` concatenation measures its result."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}
        self.filters["possessive"] = _bounded_filter("possessive", possessive)
        self.globals["range"] = _bounded_range
        self.globals["lipsum"] = _bounded_lipsum

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for times, seq in ((left, right), (right, left)):
                if isinstance(times, int) and isinstance(seq, (str, list, tuple)):
                    _at_most(max(times, 0) * len(seq), "'*'")
            both_ints = isinstance(left, int) and isinstance(right, int)
            if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TooMuchWork(f"'*' would build a number of over {MAX_INT_BITS} bits")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
                raise TooMuchWork(f"'**' would build a number of over {MAX_INT_BITS} bits")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left, right)
        what = f"'{operator}'"
        _measured(left, what)
        _measured(right, what)
        return _measured(super().call_binop(context, operator, left, right), what)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(target, (types.BuiltinMethodType, types.MethodType)) and isinstance(owner, str):
            _check_str_method(owner, target.__name__, args, kwargs)
        for value in (*args, *kwargs.values()):
            _measured(value, "a call")
        return _measured(super().call(__context, __obj, *args, **kwargs), "a call")

    @staticmethod
    def loop(iterable: Iterable[Any]) -> Iterator[Any]:
        """Iterate ``iterable``, one step of the budget per item."""
        for item in iterable:
            _spend(1)
            yield item

    @staticmethod
    def measured(value: Any) -> Any:
        return _measured(value, "'~'")

    @staticmethod
    def finalize_output(value: Any) -> Any:
        """Every ``{{ }}`` value, before it is printed."""
        return _measured(value, "the output")

    def compile(self, source: str | nodes.Template, name: str | None = None, filename: str | None = None,
                raw: bool = False, defer_init: bool = False) -> Any:
        """Compile with every loop counted and every concatenation measured.

        The template's node tree is changed before it is compiled (``Environment.compile``
        accepts a tree): each ``for`` iterates through ``loop`` and each ``~`` result
        passes through ``measured``, both environment attributes, so no name a template
        could shadow is involved.
        """
        if isinstance(source, str):
            source = _instrumented(self.parse(source, name, filename))
        return super().compile(source, name, filename, raw, defer_init)


def _through(method: str, node: nodes.Expr) -> nodes.Expr:
    return nodes.Call(nodes.EnvironmentAttribute(method), [node], [], None, None, lineno=node.lineno)


class _Instrument(NodeTransformer):
    """Count every ``for`` loop's iterations and measure every ``~`` result."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        node = self.generic_visit(node)
        node.iter = _through("loop", node.iter)
        if node.recursive:  # loop(children) iterates again, outside the wrapped iter
            for call in node.find_all(nodes.Call):
                if isinstance(call.node, nodes.Name) and call.node.name == "loop" and call.args:
                    call.args[0] = _through("loop", call.args[0])
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Expr:
        node = self.generic_visit(node)
        node.nodes = [_through("measured", part) for part in node.nodes]  # before each is printed
        return _through("measured", node)


def _instrumented(tree: nodes.Template) -> nodes.Template:
    return _Instrument().visit(tree)
