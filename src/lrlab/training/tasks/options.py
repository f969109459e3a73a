"""A task's options: ``key=value`` text read as TOML scalars, and checked against the task
function's signature before it is called.

``parse_options(["hidden=32", "cell=gru", "dropout=0.1"])`` reads each value as a TOML scalar
(an integer, a float, a quoted string, ``true``/``false``); a bare word that is no TOML value
(``cell=gru``) is taken as that string. ``check_options(factory, ref, options)`` names an
unknown key with the keys the function takes, and a value of the wrong type with the type its
annotation asks for (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, unions of these),
in one line; an integer given for a ``float`` option is made a float, so that ``dropout=1``
and ``dropout=1.0`` are one configuration (one run id, one fingerprint).
"""

from __future__ import annotations

import inspect
import math
import sys
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["check_options", "options_label", "parse_options"]

_SCALARS = (bool, int, float, str)


def parse_options(values: Iterable[str]) -> dict[str, Any]:
    """``{key: value}`` from ``key=value`` strings, each value a TOML scalar (a bare word is a
    string). ``ValueError`` in one line for a missing ``=``, a key that is no Python name, a key
    given twice, an empty value or an array or table.

    >>> parse_options(["hidden=32", "cell=gru", 'name="a b"', "dropout=0.1", "bidirectional=true"])
    {'hidden': 32, 'cell': 'gru', 'name': 'a b', 'dropout': 0.1, 'bidirectional': True}
    """
    options: dict[str, Any] = {}
    for text in values:
        key, sep, raw = text.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ValueError(f"task option {text!r} must look like key=value (e.g. hidden=32 or cell=gru)")
        if not key.isidentifier():
            raise ValueError(
                f"task option key {key!r} must be a Python name (letters, digits, _), as in {text!r}"
            )
        if key in options:
            raise ValueError(
                f"task option {key!r} is given twice ({key}={options[key]!r} and {text!r}); give it once"
            )
        if not raw:
            raise ValueError(
                f"task option {key!r} has no value; write {key}=VALUE (a number, true/false or a word)"
            )
        options[key] = _scalar(key, raw)
    return options


def _scalar(key: str, raw: str) -> Any:
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word: cell=gru
    if isinstance(value, (list, dict)):
        raise ValueError(
            f"task option {key}={raw}: a value is one number, string or true/false, not an array or a table"
        )
    if not isinstance(value, _SCALARS):  # a TOML date or time: taken as it was written
        return raw
    return value


def check_options(
    factory: Callable[..., Any], ref: str, options: dict[str, Any], *, types: bool = True
) -> dict[str, Any]:
    """``options`` checked against ``factory``'s signature: the options it will be called with
    (integers given for ``float`` options made floats). ``ValueError`` in one line naming an
    unknown key and the keys ``factory`` takes, or (with ``types``) a value of another type than
    its annotation. A factory without a signature to read, or with ``**kwargs``, takes any key.
    A built-in task checks its values itself, naming the option (``types=False`` for it)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return dict(options)
    named = {name: p for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    hints = _hints(factory)
    known = ", ".join(named) or "no options"
    bad = f"task {ref!r}: bad options {options!r}"
    checked = {}
    for key, value in options.items():
        if key not in named and not open_ended:
            raise ValueError(f"{bad}: no option {key!r} (it takes: {known})")
        checked[key] = _typed(bad, key, value, hints.get(key, Any)) if types else value
    missing = [name for name, p in named.items() if p.default is p.empty and name not in checked]
    if missing:
        raise ValueError(f"{bad}: it needs {', '.join(missing)} (it takes: {known})")
    return checked


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's annotations as types; none when they cannot be read (a forward
    reference to a name its module never defines): then no value is type-checked."""
    try:
        return typing.get_type_hints(factory)
    except Exception:
        return {}


def _typed(bad: str, key: str, value: Any, hint: Any) -> Any:
    allowed = _allowed(hint)
    if allowed is None or (value is None and _admits_none(hint)):
        return value
    for kind in allowed:
        converted = _as(value, kind)
        if converted is not _NO:
            return converted
    words = " or ".join(_word(kind) for kind in allowed)
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    raise ValueError(f"{bad}: {key!r} takes {words}, got {shown} ({_GOT.get(type(value), 'a value')})")


def _admits_none(hint: Any) -> bool:
    """Whether ``hint`` is ``X | None`` (a Python caller's explicit None is then a value)."""
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


_NO = object()
_GOT = {bool: "a boolean", int: "a whole number", float: "a number", str: "a string"}


def _allowed(hint: Any) -> list[Any] | None:
    """The scalar kinds (types, or ``("literal", values)``) a hint admits; None when it
    admits anything or a kind that is not checked here (a list, a class of the user's)."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return [("literal", typing.get_args(hint))]
    if origin in (typing.Union, types.UnionType):
        kinds: list[Any] = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            sub = _allowed(arg)
            if sub is None:
                return None
            kinds += sub
        return kinds
    if hint in _SCALARS:
        return [hint]
    return None


def _as(value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` when it is one (an int is a float too), else ``_NO``."""
    if isinstance(kind, tuple):
        return value if any(value == v and type(value) is type(v) for v in kind[1]) else _NO
    if isinstance(value, bool) or kind is bool:
        return value if isinstance(value, bool) and kind is bool else _NO
    if kind is float and isinstance(value, (int, float)):
        return float(value)
    return value if isinstance(value, kind) else _NO


def _word(kind: Any) -> str:
    if isinstance(kind, tuple):
        return "one of " + ", ".join(repr(v) for v in kind[1])
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        kind, kind.__name__
    )


def options_label(options: dict[str, Any], limit: int = 40) -> str:
    """A short, name-safe label of ``options`` for a study's name (``cell-gru-hidden-32``,
    keys sorted); a digest when that would be longer than ``limit`` characters; ``""`` for none.

    >>> options_label({"hidden": 32, "cell": "gru"})
    'cell-gru-hidden-32'
    """
    if not options:
        return ""
    parts = []
    for key in sorted(options):
        value = options[key]
        text = repr(value) if isinstance(value, float) and not math.isfinite(value) else str(value).lower()
        parts.append(f"{key}-{text}")
    label = "".join(c if c.isalnum() or c in "._" else "-" for c in "-".join(parts))
    if len(label) <= limit:
        return label
    import hashlib
    import json

    return "options-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
