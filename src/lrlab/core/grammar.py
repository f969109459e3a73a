"""The torch-free half of the optimizer grammar: the one alias table, and a spec read into
its name and arguments without building anything.

:mod:`lrlab.optim.grammar` (which imports torch) checks names and arguments against the
optimizer classes and builds them; it re-exports :data:`OPTIMIZER_ALIASES` from here.
The core reads a spec here to decide a run's defaults (``lrlab.core.defaults``) without
torch, so the aliases are written once, in this module.

>>> read_optimizer("nesterov(momentum=0.8)")
('sgd', {'momentum': 0.8, 'nesterov': True})
>>> read_optimizer("sgd(momentum=)") is None
True
"""

from __future__ import annotations

from typing import Any

from lrlab.schedules.spec import _Parser

__all__ = ["OPTIMIZER_ALIASES", "read_optimizer"]

OPTIMIZER_ALIASES: dict[str, str] = {
    "gd": "sgd",
    "sgdm": "sgd(momentum=0.9)",
    "momentum": "sgd(momentum=0.9)",
    "nesterov": "sgd(momentum=0.9, nesterov=true)",
    "nag": "sgd(momentum=0.9, nesterov=true)",
    # torch's own default, written out because Keras' AdamW defaults to 0.004: the
    # generated Keras code then gets the decay the run had.
    "adamw": "adamw(weight_decay=0.01)",
    "dbd": "deltabardelta",
}
"""The one alias table: alias -> canonical spec (whose name is a class name).
Where two aliases name the same spec, the first is its short name (``optimizer_key``)."""


def read_optimizer(spec: str, *, aliases: bool = True) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` of the optimizer ``spec``, the name lower-cased and an alias
    resolved (arguments written after an alias override its own); None for a spec that does
    not parse. Names and arguments are not checked: :func:`lrlab.optim.parse_optimizer` does."""
    try:
        parser = _Parser(spec)
        kind, name, _ = parser.take()
        if kind != "name":
            return None
        arguments: dict[str, Any] = {}
        if parser.peek()[1] == "(":
            parser.take()
            while parser.peek()[1] not in (")", ""):
                key = parser.take()[1]
                parser.expect("=")
                arguments[key] = parser.value()
                if parser.peek()[1] == ",":
                    parser.take()
    except ValueError:
        return None
    name = name.lower()
    if aliases and name in OPTIMIZER_ALIASES:
        base = read_optimizer(OPTIMIZER_ALIASES[name], aliases=False)
        if base is None:  # pragma: no cover - the table's specs parse
            return None
        return base[0], {**base[1], **arguments}
    return name, arguments
