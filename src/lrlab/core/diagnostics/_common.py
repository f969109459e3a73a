"""What every diagnostic shares: the :class:`Finding` it returns, a family of
configurations (the same everything but the LR), the LR a configuration actually reaches and
the configurations in the order of the one scorer."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lrlab.core.grouping import Configuration, config_axes, format_value, schedule_shape
from lrlab.core.ranking import Ranked, rank
from lrlab.core.records import EpochRecord
from lrlab.formatting import num
from lrlab.schedules.summary import key_points


@dataclass(frozen=True)
class Finding:
    """One diagnostic: ``kind`` (best, divergence, stuck, slow, unstable, overfitting, schedule_decay,
    or an instrument's: update_ratio, sharpness, spike, warmup, lr_audit, noise_scale, eval_mode),
    ``severity`` (``info`` or ``warning``), a sentence, and the numbers it rests on.

    A finding made while a run trains (an instrument's) carries the ``step`` it was made at
    and its run's id; :attr:`evidence` is its numbers (the name the stored findings use)."""

    kind: str
    severity: str
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    step: int | None = None

    @property
    def evidence(self) -> dict[str, Any]:
        """The numbers the finding rests on (the same dict as :attr:`numbers`)."""
        return self.numbers

    @classmethod
    def at_step(cls, step: int, kind: str, message: str, evidence: dict[str, Any] | None = None,
                severity: str = "warning") -> Finding:  # fmt: skip
        """An instrument's finding: made at optimizer ``step`` of one run."""
        return cls(kind, severity, message, dict(evidence or {}), step=int(step))


def display(value: float | None) -> str:
    return num(value, missing="n/a")


_LR_FIELD = re.compile(r"\b(\w*lr\w*)=[-+0-9.eE]+")


def family_key(cfg: Configuration) -> str:
    """The configuration without seed and LR: the configurations of one family differ only in
    their learning rate. Every LR field of the schedule counts as the LR (a study scales a
    cycle's bounds, rounded, with its LR), its other knobs (steps, decay) do not."""
    items = []
    for k, v in config_axes(cfg.config).items():
        if k == "lr":
            continue
        if k == "schedule":
            text = _LR_FIELD.sub(r"\1=lr", schedule_shape(v))
        else:
            text = schedule_shape(v, cfg.lr) if k == "momentum" else format_value(v)
        items.append((k, text))
    return json.dumps(sorted(items))


def ranked_configurations(
    configs: Sequence[Configuration], epochs: Mapping[str, Sequence[EpochRecord]], metric: str | None = None
) -> list[tuple[Configuration, Ranked]]:
    """The configurations in the order of the one scorer (:func:`lrlab.core.ranking.rank`)."""
    by_key = {cfg.key: cfg for cfg in configs}
    runs = [r for cfg in configs for r in cfg.runs]
    return [(by_key[entry.key], entry) for entry in rank(runs, epochs, metric)]


def peak_lr(cfg: Configuration, planned_steps: Mapping[str, int] | None = None) -> float:
    """The largest LR a configuration's schedule reaches over its planned steps (its base LR
    when the steps are unknown): what a run that diverged was actually trained at."""
    planned_steps = planned_steps or {}
    for run in cfg.runs:
        steps = planned_steps.get(run.id) or positive_int(run.extras.get("total_steps"))
        if steps:
            return key_points(cfg.config.schedule, steps).peak
    return cfg.lr


def positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
