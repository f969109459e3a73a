"""Which instruments a run carries: the cheap ones on by default, the expensive ones named."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ALL", "DEFAULT", "InstrumentSettings"]

DEFAULT = frozenset({"update_ratio", "spikes", "warmup", "lr_audit", "eval_mode", "step_probe"})
OPTIONAL = frozenset({"sharpness", "noise_scale", "per_layer"})
ALL = DEFAULT | OPTIONAL


@dataclass(frozen=True)
class InstrumentSettings:
    """The instruments on (``names``), how often the update ratio is read (``update_every``
    steps), the step probe (``probe_every``; it runs where the run has a fixed-batch loss) and
    the sharpness (``sharpness_every``, with ``sharpness_iters`` power iterations).

    >>> sorted(InstrumentSettings.parse("default,sharpness").names)[:3]
    ['eval_mode', 'lr_audit', 'sharpness']
    """

    names: frozenset[str] = DEFAULT
    update_every: int = 1
    probe_every: int = 10
    sharpness_every: int = 100
    sharpness_iters: int = 20

    def __post_init__(self) -> None:
        unknown = sorted(set(self.names) - ALL)
        if unknown:
            raise ValueError(
                f"unknown instrument {unknown[0]!r}: choose from {', '.join(sorted(ALL))}, 'default', 'all' or 'none'"
            )
        for name in ("update_every", "probe_every", "sharpness_every", "sharpness_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")

    def __contains__(self, name: str) -> bool:
        return name in self.names

    @classmethod
    def parse(cls, value: InstrumentSettings | bool | str | Iterable[str] | None) -> InstrumentSettings:
        """Settings from ``None``/``True`` (the default ones), ``False``/``"none"`` (none), a
        comma-separated string or a list of names, where ``"default"`` and ``"all"`` stand for
        those sets and ``"-name"`` takes one away (``"default,-spikes,sharpness"``)."""
        if isinstance(value, InstrumentSettings):
            return value
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(frozenset())
        items = value.split(",") if isinstance(value, str) else list(value)
        names: set[str] = set()
        for raw in items:
            if not isinstance(raw, str):
                raise TypeError(f"instrument names must be strings, got {type(raw).__name__}: {raw!r}")
            item = raw.strip()
            if item in ("", "none"):
                continue
            if item.startswith("-"):
                names.discard(item[1:])
            elif item in ("default", "all"):
                names |= DEFAULT if item == "default" else ALL
            else:
                names.add(item)
        return cls(frozenset(names))
