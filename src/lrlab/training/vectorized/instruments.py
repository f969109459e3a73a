"""The instruments of a vectorised group: the update ratio and the step probe of every member,
measured on the stacked weights at once and handed to each member's panel
(:meth:`lrlab.instruments.Instruments.observe_update`), which judges them by the same rules as
a run stepped by ``torch.optim``.

A member's update ratio is ``||w_after - w_before|| / ||w_before||`` over all its parameters
(a vectorised run has one param group); the step probe reads the loss of one training batch
held fixed (the group's batch size, drawn with a shuffle of its own, as lrlab's own loop
does) before the step, after it and one update further, for every member in one stacked
forward pass each. The weights are restored bit for bit and the random state is forked, so
the members train exactly as without the instruments.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lrlab.instruments import InstrumentSettings
from lrlab.instruments.probe import one_update_further, optimal_multiple, quietly
from lrlab.training.loop import probe_batch
from lrlab.training.vectorized.group import _member_norms

if TYPE_CHECKING:
    from lrlab.training.vectorized.group import _Group

__all__ = ["StackedInstruments"]

log = logging.getLogger("lrlab.instruments")


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """An instrument that fails never fails the training it watches: one warning, then the
    group trains on without them (the weights are restored before a failure can leave them)."""

    @functools.wraps(method)
    def run(self: StackedInstruments, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            return None if method.__name__ == "before" else (None, None)
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # any failure of an instrument
            self.broken = True
            log.warning("lrlab instruments stopped (%s: %s); the runs go on recording without them",
                        type(exc).__name__, exc)  # fmt: skip
            return None if method.__name__ == "before" else (None, None)

    return run


class StackedInstruments:
    """The update ratio (``update_ratio``/``warmup`` on) and the step probe (``step_probe``
    on, every ``probe_every`` steps) of every member of ``group``."""

    def __init__(self, group: _Group, settings: InstrumentSettings) -> None:
        self.group = group
        self.broken = False
        self.ratio_on = bool({"update_ratio", "warmup"} & settings.names)
        self.every = settings.probe_every
        self.batch = probe_batch(group.runs[0]) if "step_probe" in settings else None
        self._before: list[Tensor] | None = None
        self._buffers: list[Tensor] = []  # the weights before the step, reused (no allocation per step)
        self._weight: Tensor | None = None
        self._f0: Tensor | None = None

    @property
    def on(self) -> bool:
        return self.ratio_on or self.batch is not None

    def _losses(self) -> Tensor:
        assert self.batch is not None
        inputs, targets = self.batch
        return quietly(lambda: self.group.loss(self.group.model(inputs), targets)).double()

    @_guarded
    def before(self, step: int, params: Sequence[Tensor]) -> None:
        """The weights before the step (and, on a probe's step, the probe batch's loss)."""
        probing = self.batch is not None and step % self.every == 0
        if not (self.ratio_on or probing):
            self._before = None
            return
        with torch.no_grad():
            if [b.shape for b in self._buffers] != [p.shape for p in params]:  # a member dropped: restacked
                self._buffers = [torch.empty_like(p) for p in params]
            torch._foreach_copy_(self._buffers, [p.detach() for p in params])
            self._before = self._buffers
            self._weight = _member_norms(self._before) if self.ratio_on else None
        self._f0 = self._losses() if probing else None

    @_guarded
    def after(self, params: Sequence[Tensor]) -> tuple[Tensor | None, list[float] | None]:
        """Each member's update ratio (``(K,)`` on the device, or None) and, on a probe's
        step, its multiple (host floats, NaN where not finite)."""
        before, self._before = self._before, None
        if before is None:
            return None, None
        ratios = None
        with torch.no_grad():
            torch._foreach_sub_(before, [p.detach() for p in params])  # in place: before - after, -update
            if self._weight is not None:
                ratios = _member_norms(before) / self._weight
        if self._f0 is None:
            return ratios, None
        f0, self._f0 = self._f0, None
        f1 = self._losses()
        f2 = one_update_further(params, before, self._losses)  # before holds before - after
        rows = np.stack([f0.cpu().numpy(), f1.cpu().numpy(), f2.cpu().numpy()], axis=1)
        return ratios, [optimal_multiple(*map(float, row)) for row in rows]
