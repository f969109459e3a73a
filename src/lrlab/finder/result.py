"""``FinderResult``: what a range test measured and what the rules make of it."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lrlab.core.records import FinderRecord
from lrlab.finder import suggest
from lrlab.plot import save_figure
from lrlab.plot.range_test import RangeTest, range_test_figure
from lrlab.plot.static import draw_figure

__all__ = ["FinderResult"]

_PLOT_SUFFIXES = (".png", ".svg", ".html")


@dataclass(frozen=True)
class FinderResult:
    """A learning-rate range test, as ``find_lr`` returns it.

    ``record`` is the test as the store keeps it (:class:`~lrlab.core.records.FinderRecord`:
    the curve, the suggestions, the recommended LR and its reason, the configuration), not
    yet named: :meth:`to_record` gives it its id, task, optimizer and cyclic bounds. The
    result adds what a test just run knows besides.

    Attributes:
        lrs: the LR of every iteration run (base LR; a group with ``lr_mult`` got lr x lr_mult).
        losses: the raw loss of each iteration (NaN for a skipped non-finite batch).
        smoothed: the bias-corrected moving average of ``losses``.
        suggestions: rule name -> suggested LR (see ``lrlab.finder.suggest``).
        lr: the recommended LR (NaN when no rule could decide).
        reason: which rule gave ``lr`` and why that rule is the default.
        rule: the name of that rule.
        diverged: whether the test stopped early because the loss blew up.
        skipped: how many non-finite batches were skipped.
        seconds: wall time of the test.
        config: the arguments the test ran with (JSON-ready).
        problem: None when the curve gave a trustworthy answer; otherwise one line saying
            why not (every LR diverged, a flat curve, too few steps) and what to try.
    """

    record: FinderRecord
    rule: str | None = None
    diverged: bool = False
    seconds: float = 0.0
    problem: str | None = None

    @property
    def lrs(self) -> np.ndarray:
        return self.record.lrs

    @property
    def losses(self) -> np.ndarray:
        return self.record.losses

    @property
    def smoothed(self) -> np.ndarray:
        return self.record.smoothed

    @property
    def suggestions(self) -> dict[str, float]:
        return self.record.suggestions

    @property
    def lr(self) -> float:
        return self.record.lr

    @property
    def reason(self) -> str:
        return self.record.reason

    @property
    def config(self) -> dict[str, Any]:
        return self.record.config

    @property
    def skipped(self) -> int:
        return int(np.sum(~np.isfinite(self.losses)))

    @property
    def trustworthy(self) -> bool:
        """Whether the recommendation can be trusted (no ``problem``, a finite ``lr``)."""
        return self.problem is None and bool(np.isfinite(self.lr))

    def __len__(self) -> int:
        return len(self.lrs)

    def cyclic_bounds(self) -> tuple[float, float]:
        """``(base_lr, max_lr)`` for cyclic / one-cycle schedules, after Smith (2017):
        max_lr at the lowest smoothed loss (of the trimmed curve), base_lr = max_lr / 4."""
        window = suggest.trim(len(self.lrs))
        return suggest.cyclic_bounds(self.lrs[window], self.smoothed[window])

    def _bounds_or_none(self) -> tuple[float, float] | None:
        try:
            return self.cyclic_bounds()
        except ValueError:
            return None

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """The loss-vs-LR curve (log x) with each suggestion marked, the chosen LR as a
        vertical line and the cyclic bounds shaded. Without ``path`` returns a matplotlib
        ``Figure`` (not registered with pyplot); with a ``.png``/``.svg`` path writes it and
        returns the path; with ``.html`` writes an offline interactive (plotly) page.

        It is the range-test figure ``lrlab report`` draws for stored tests
        (``lrlab.plot.range_test.range_test_figure``), drawn by the same renderers.
        """
        if path is not None and Path(path).suffix.lower() not in _PLOT_SUFFIXES:
            raise ValueError(f"path must end in one of {', '.join(_PLOT_SUFFIXES)}, got {Path(path).name!r}")
        repeats = self.config.get("repeats", 1)
        test = RangeTest(
            self.lrs, self.losses, self.smoothed, self.suggestions, self.lr, self.rule, self._bounds_or_none(),
            *([f"mean loss of {repeats} range tests (thick: smoothed, thin: raw)"] if repeats > 1 else []),
        )  # fmt: skip
        spec = range_test_figure([test], title=title)
        if path is None:
            return draw_figure(spec)
        return save_figure(spec, path)

    def to_record(
        self,
        task: str,
        optimizer: str,
        *,
        id: str | None = None,
        sweep: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> FinderRecord:
        """This result as an ``lrlab.core.records.FinderRecord`` for the store, named."""
        full_config = {**self.config, **(config or {}), "rule": self.rule, "problem": self.problem}
        created = time.time()
        if id is None:
            payload = json.dumps([task, optimizer, full_config, created], sort_keys=True, default=str)
            id = "find-" + hashlib.sha1(payload.encode()).hexdigest()[:12]
        bounds = self._bounds_or_none()
        return replace(
            self.record, id=id, task=task, optimizer=optimizer, lrs=np.asarray(self.lrs, dtype=np.float64),
            losses=np.asarray(self.losses, dtype=np.float64), smoothed=np.asarray(self.smoothed, dtype=np.float64),
            suggestions=dict(self.suggestions), lr=float(self.lr), base_lr=None if bounds is None else bounds[0],
            max_lr=None if bounds is None else bounds[1], sweep=sweep, created_at=created, config=full_config,
        )  # fmt: skip
