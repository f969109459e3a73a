"""Spec strings: ``str(schedule)`` writes one, ``parse`` reads it back.

The grammar is small and parsed by hand (never ``eval``)::

    call   := NAME "(" [arg ("," arg)*] ")"
    arg    := [NAME "="] value
    value  := call | NUMBER | STRING | "true" | "false" | "True" | "False" | "None"
            | "[" [value ("," value)*] "]"

Floats are written with ``repr``, the shortest text that reads back to the same
float64, so ``parse(str(s)) == s`` exactly.

Reading is bounded work on any text: a spec has at most MAX_SPEC_CHARS characters,
MAX_NESTING levels of schedules and lists, and numbers of at most MAX_NUMBER_CHARS
characters that are finite as float64; anything else is a ``SpecError``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from lrlab.schedules._base import REGISTRY, Schedule

# Limits on what ``parse`` reads (and the optimizer grammar that shares its parser).
MAX_SPEC_CHARS = 100_000
# Levels of schedule calls and lists, the outermost call counting as one.
MAX_NESTING = 32
# repr() of any float64 takes at most 24 characters; 40 leaves room for written-out forms.
MAX_NUMBER_CHARS = 40


class SpecError(ValueError):
    """A spec string that cannot be read; ``position`` is the 0-based offending column."""

    def __init__(self, message: str, spec: str, position: int) -> None:
        self.spec = spec
        self.position = position
        self.reason = message
        super().__init__(f"{message} at position {position}: {_excerpt(spec, position)}")


def _excerpt(spec: str, position: int, width: int = 80) -> str:
    """``repr(spec)``, or for a long spec the part around ``position`` (``...`` marks cuts)."""
    if len(spec) <= 2 * width:
        return repr(spec)
    start = max(0, min(position - width // 2, len(spec) - width))
    head = "..." if start > 0 else ""
    tail = "..." if start + width < len(spec) else ""
    return f"{head}{spec[start : start + width]!r}{tail}"


# ------------------------------------------------------------------ writing


def format_spec(schedule: Schedule) -> str:
    fields = dataclasses.fields(schedule)  # type: ignore[arg-type]
    parts: list[str] = []
    for index, field in enumerate(fields):
        value = getattr(schedule, field.name)
        if field.default is not dataclasses.MISSING and value == field.default:
            continue
        text = _format_value(value)
        positional = index == 0 and _holds_schedules(value)
        parts.append(text if positional else f"{field.name}={text}")
    return f"{schedule.name}({', '.join(parts)})"


def _holds_schedules(value: Any) -> bool:
    if isinstance(value, Schedule):
        return True
    return isinstance(value, tuple) and bool(value) and isinstance(value[0], Schedule)


def _format_value(value: Any) -> str:
    if isinstance(value, Schedule):
        return format_spec(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "None"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} into a spec")


# A parameter value as a spec writes it (numbers exactly, strings quoted, lists in brackets).
format_value = _format_value


# ------------------------------------------------------------------ reading

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<punct>[()\[\],=])
    """,
    re.VERBOSE,
)
_KEYWORDS: dict[str, Any] = {"true": True, "True": True, "false": False, "False": False, "None": None}


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.tokens: list[tuple[str, str, int]] = []
        self.depth = 0
        if len(spec) > MAX_SPEC_CHARS:
            raise SpecError(
                f"spec too long: at most {MAX_SPEC_CHARS} characters are allowed, got {len(spec)}",
                spec,
                MAX_SPEC_CHARS,
            )
        pos = 0
        while pos < len(spec):
            match = _TOKEN.match(spec, pos)
            if match is None:
                raise SpecError(f"unexpected character {spec[pos]!r}", spec, pos)
            kind = match.lastgroup or ""
            if kind != "space":
                self.tokens.append((kind, match.group(), pos))
            pos = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int]:
        if self.index < len(self.tokens):
            return self.tokens[self.index]
        return ("end", "", len(self.spec))

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        kind, value, pos = self.take()
        if value != text or kind == "string":
            found = "the end" if kind == "end" else repr(value)
            raise SpecError(f"expected {text!r}, found {found}", self.spec, pos)

    def fail(self, message: str, pos: int) -> SpecError:
        return SpecError(message, self.spec, pos)

    def enter(self, pos: int) -> None:
        """One level deeper (a call or a list), at most MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(
                f"nesting too deep: at most {MAX_NESTING} levels of schedules and lists are allowed", pos
            )

    def number(self, text: str, pos: int) -> int | float:
        if len(text) > MAX_NUMBER_CHARS:
            raise self.fail(
                f"number {text[:12]}... too long: at most {MAX_NUMBER_CHARS} characters are allowed, "
                f"got {len(text)}",
                pos,
            )
        if not any(c in text for c in ".eE"):
            return int(text)
        number = float(text)
        if not math.isfinite(number):
            raise self.fail(
                f"number {text} out of range: numbers must be finite float64 (below 1.8e308)", pos
            )
        return number

    def value(self) -> Any:
        kind, text, pos = self.take()
        if kind == "number":
            return self.number(text, pos)
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "name":
            if self.peek()[1] == "(":
                return self.call(text, pos)
            if text in _KEYWORDS:
                return _KEYWORDS[text]
            raise self.fail(
                f"unknown word {text!r} (a value is a number, a string, a list or a schedule)", pos
            )
        if text == "[":
            self.enter(pos)
            items: list[Any] = []
            if self.peek()[1] != "]":
                items.append(self.value())
                while self.peek()[1] == ",":
                    self.take()
                    items.append(self.value())
            self.expect("]")
            self.depth -= 1
            return items
        found = "the end" if kind == "end" else repr(text)
        raise self.fail(f"expected a value, found {found}", pos)

    def call(self, name: str, pos: int) -> Schedule:
        if name not in REGISTRY:
            known = ", ".join(sorted(REGISTRY))
            raise self.fail(f"unknown schedule {name!r} (known: {known})", pos)
        cls = REGISTRY[name]
        field_names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        self.enter(pos)
        self.expect("(")
        kwargs: dict[str, Any] = {}
        arg_positions: dict[str, int] = {}
        positional = True
        while self.peek()[1] != ")":
            kind, text, arg_pos = self.peek()
            if kind == "name" and self.index + 1 < len(self.tokens) and self.tokens[self.index + 1][1] == "=":
                self.take()
                self.take()
                if text not in field_names:
                    raise self.fail(
                        f"{name}() has no parameter {text!r} (parameters: {', '.join(field_names)})", arg_pos
                    )
                key, positional = text, False
            else:
                if not positional:
                    raise self.fail("a positional argument cannot follow a keyword argument", arg_pos)
                if len(kwargs) >= len(field_names):
                    raise self.fail(f"{name}() takes at most {len(field_names)} arguments", arg_pos)
                key = field_names[len(kwargs)]
            if key in kwargs:
                raise self.fail(f"{name}() got {key!r} twice", arg_pos)
            arg_positions[key] = arg_pos
            kwargs[key] = self.value()
            kind, text, next_pos = self.peek()
            if text not in (",", ")") or kind == "string":
                found = "the end" if kind == "end" else repr(text)
                raise self.fail(f"expected ',' or ')', found {found}", next_pos)
            if text == ",":
                self.take()
        self.expect(")")
        self.depth -= 1
        try:
            return build(name, kwargs)
        except SpecError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            reason = _reason(exc)
            # Point at the argument the message names, else at the schedule's name.
            named = re.match(r"([A-Za-z_]+)", reason)
            where = arg_positions.get(named.group(1), pos) if named else pos
            raise self.fail(f"{name}(): {reason}", where) from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"missing \d+ required positional arguments?: (.*)", text)
    if match:
        return f"missing required parameter {match.group(1)}"
    return text


def build(name: str, params: dict[str, Any]) -> Schedule:
    """Construct schedule ``name`` from plain parameters (nested dicts and lists allowed)."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown schedule {name!r} (known: {known})")
    cls = REGISTRY[name]
    converted = {key: _from_plain(value) for key, value in params.items()}
    for key, value in converted.items():
        if isinstance(value, list):
            converted[key] = tuple(value)
    return cls(**converted)


def _from_plain(value: Any) -> Any:
    if isinstance(value, dict) and "name" in value:
        return from_dict(value)
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    return value


def from_dict(data: dict[str, Any]) -> Schedule:
    """Inverse of ``Schedule.to_dict()``.

    >>> from lrlab.schedules import cosine
    >>> from_dict(cosine(0.1, total_steps=100).to_dict()) == cosine(0.1, total_steps=100)
    True
    """
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"a schedule dict needs a 'name' key, got {data!r}")
    params = {k: v for k, v in data.items() if k != "name"}
    return build(str(data["name"]), params)


def parse(spec: str) -> Schedule:
    """Read a spec string such as ``warmup(cosine(lr=3e-4, total_steps=10000), steps=500)``.

    Raises ``SpecError`` (a ``ValueError``) naming the problem and its position.

    >>> parse("cosine(lr=0.1, total_steps=100)")(50)
    0.05
    """
    if not isinstance(spec, str):
        raise ValueError(f"a schedule spec must be a string, got {spec!r}")
    parser = _Parser(spec)
    kind, text, pos = parser.peek()
    if kind != "name":
        raise parser.fail("a spec starts with a schedule name such as cosine(...)", pos)
    parser.take()
    if parser.peek()[1] != "(":
        if text in REGISTRY:
            raise parser.fail(f"expected '(' after {text!r}", parser.peek()[2])
        known = ", ".join(sorted(REGISTRY))
        raise parser.fail(f"unknown schedule {text!r} (known: {known})", pos)
    result = parser.call(text, pos)
    kind, text, pos = parser.peek()
    if kind != "end":
        raise parser.fail(f"unexpected {text!r} after the schedule", pos)
    return result
