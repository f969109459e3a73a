"""The instrument panel of one run: every instrument behind one object the recorder feeds.

:class:`Instruments` hooks the optimizer (the update ratio, the LR each group used, the
sharpness when due) and is fed the recorded steps (losses, for the spikes) and evaluations
(the schedule-free mode). The heavy reading is batched: :meth:`Instruments.collect` turns the
hooks' tensors into series and runs the rules over the new steps, and :meth:`take` hands the
new series points and findings to the store. Each finding is also passed to ``on_finding``
when it is made (``live=True`` logs it).

Steps: the optimizer steps the hooks count are 0-based; the first recorded step fixes the
offset between that count and the caller's step numbers (0-based in lrlab's loop, which records
a step before ``optimizer.step()``; 1-based in ``lrlab.track`` and the trainers' callbacks, which
log it after, ``taken``; the global step of a resumed run), so the series and the findings carry
the step of the iteration that took the update, as the caller logged it. The LR audit reads the
schedule at the optimizer's own index (``shift`` less where the caller logs after the step).
"""

from __future__ import annotations

import functools
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from lrlab.core.diagnostics import Finding
from lrlab.instruments import words
from lrlab.instruments.audit import LRAudit, auditable
from lrlab.instruments.noise import NoiseScale
from lrlab.instruments.probe import PROBE_LOW, PROBE_WINDOW, ProbeJudge, StepProbe
from lrlab.instruments.progress import RISE_FACTOR, RISE_STEPS, STEADY_BLOCK, rising_far, steady_fall
from lrlab.instruments.ratio import UpdateRatio
from lrlab.instruments.settings import InstrumentSettings
from lrlab.instruments.sharpness import Sharpness
from lrlab.instruments.spikes import OLMO, SpikeDetector, SpikeRule
from lrlab.instruments.warmup import loss_stall, needs_warmup
from lrlab.optim.lr_free import is_schedule_free
from lrlab.schedules import Schedule

__all__ = ["PROBE_LOW", "PROBE_WINDOW", "RATIO_HIGH", "RATIO_LOW", "RATIO_WINDOW", "Instruments", "Series"]

# The thresholds were set on clean runs of tasks the benchmark does not use (digits-linear with
# SGD, SGD + momentum and Adam, chars-lstm with Adam, at the study's LRs, no warmup): their
# update ratio settles at 3e-3 to 1.7e-2 after 50 steps and reaches 0.11 in the first 10 steps.
RATIO_SETTLED = 50  # measured steps before the settled thresholds apply
RATIO_HIGH = 5e-2  # settled: a 20-step median above three times the largest clean value
RATIO_HIGH_EARLY = 0.3  # before that: a 5-step median above this
RATIO_LOW = 3e-4  # settled: a 20-step median below a tenth of the smallest clean value
RATIO_WINDOW = 20  # measured steps whose median is judged once settled
RATIO_WINDOW_EARLY = 5
WARMUP_EARLY = 10  # the first measured steps of the warmup check
WARMUP_LATER = (50, 100)  # the measured steps it compares them with
# their medians are judged with the last LOSS_WINDOW losses and the first by warmup.needs_warmup
# A jump: one measured step's ratio above RATIO_JUMP_FLOOR (a hundred times the usual 1e-3) and more
# than RATIO_JUMP times the step before's, after the first RATIO_JUMP_AFTER measured steps (a fresh
# start's weights near zero read high: digits-linear at its best LR jumps at steps 2-3). On tuning runs
# (seeds 1000, 1001; SGD momentum 0.9 on digits-linear at 0.3-30 and chars-lstm at 1-30, Adam on
# chars-lstm at 0.03-0.3, each with warmup then cosine) no run at or below its best LR jumped after step
# 10; chars-lstm with SGD at 30 (ten times its best), diverging at steps 42 and 62, jumped at 23 and 50;
# digits-linear at 30 diverged at steps 6 and 11, before the rule applies.
RATIO_JUMP_FLOOR = 0.1
RATIO_JUMP = 2.0
RATIO_JUMP_AFTER = 10
SPIKE_REPEAT = 100  # steps after a reported spike before another is reported
# The LR too small: once settled, with the LR at least half its peak, a 20-step median ratio below
# the usual 1e-3 (words.USUAL_RATIO) while the loss still falls steadily (progress.steady_fall).
# Clean tuning runs settle at 1.9e-3 or more (chars-lstm, SGD at 0.3); Adam at 3e-4 on chars-lstm,
# a hundredth of its best LR, sits at 7e-4 with its loss falling faster block after block.
RATIO_SLOW = words.USUAL_RATIO
LOSS_WINDOW = 3 * STEADY_BLOCK  # the last losses kept (a ring, filled in place)

Series = dict[str, tuple[list[int], list[float]]]
log = logging.getLogger("lrlab.instruments")


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """An instrument that fails never fails the training it watches: the panel logs one
    warning, detaches and stays silent for the rest of the run."""

    @functools.wraps(method)
    def run(self: Instruments, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # any failure of an instrument
            self.broken = True
            self.detach()
            log.warning("lrlab instruments stopped (%s: %s); the run goes on recording without them",
                        type(exc).__name__, exc)  # fmt: skip
            return None

    return run


class Instruments:
    """The instruments of one run (see the module docstring)."""

    def __init__(
        self,
        settings: InstrumentSettings | str | bool | Sequence[str] | None = None,
        *,
        schedule: Schedule | None = None,
        lr_mults: Sequence[float] | None = None,
        spike_rule: SpikeRule = OLMO,
        on_finding: Callable[[Finding], None] | None = None,
    ) -> None:
        self.settings = InstrumentSettings.parse(settings)
        self.broken = False
        self.on_finding = on_finding
        self.audit: LRAudit | None = None
        self.expect(schedule, lr_mults)
        self.ratio = UpdateRatio(self.settings.update_every, per_tensor="per_layer" in self.settings)
        self.spikes = SpikeDetector(spike_rule) if "spikes" in self.settings else None
        self.noise = NoiseScale() if "noise_scale" in self.settings else None
        self.sharpness: Sharpness | None = None
        self.probe: StepProbe | None = None
        self._probe_pending: list[tuple[int, float, bool, float]] = []  # (step, multiple, judged, LR/peak)
        self._probe_judge = ProbeJudge(self.settings.probe_every)
        self._probe_gated = (False, 1.0)  # the probe under way: judged, and its LR over the peak so far
        self._fed_ratios: list[tuple[int, list[float]]] = []  # observe_update's, awaiting collect
        self.optimizer: torch.optim.Optimizer | None = None
        self.group_names: list[str] = []
        self.tensor_names: list[str] = []
        self.offset: int | None = None  # caller's step = hook count + offset
        self.shift = 0  # 1 where the caller logs a step after taking it: its schedule index is one less
        self._series: Series = {}
        self._findings: list[Finding] = []
        self._lrs: list[tuple[int, list[float]]] = []  # (hook count, LR per group) awaiting the audit
        self._losses: list[tuple[int, float]] = []
        # per group: the first WARMUP_LATER[1] measured ratios, the last RATIO_WINDOW, and how many
        self._ratio_first: dict[int, list[float]] = {}
        self._ratio_recent: dict[int, deque[float]] = {}
        self._ratio_count: dict[int, int] = {}
        self._ratio_reported: set[int] = set()
        self._warmup_done = "warmup" not in self.settings
        self._first_lrs: list[tuple[int, list[float]]] = []  # (hook count, LR per group), the first steps
        self._spike_count, self._last_spike = 0, -(10**9)
        self._pending_sharpness: list[tuple[int, float, float, bool]] = []
        self._hooks: list[Any] = []
        self._own_count = 0  # optimizer steps, counted here when the update-ratio hooks are off
        self._once: set[str] = set()
        self._model_watched = False
        self._lr_now = self._lr_peak = 0.0  # the LR of the last step and the largest so far
        self._decayed: dict[int, bool] = {}  # measured step -> its LR below half the peak so far
        self._ring = np.full(LOSS_WINDOW, np.nan)  # the last losses, by count modulo LOSS_WINDOW
        self._ring_count = 0
        self._first_loss = math.nan
        self._fed: list[tuple[int, float]] = []  # this collect's losses, fed to the ring in order
        self._fed_at = 0

    # ------------------------------------------------------------ attaching

    def expect(self, schedule: Schedule | None, lr_mults: Sequence[float] | None = None) -> None:
        """The schedule the run is meant to follow (times ``lr_mults`` per group): the LR audit
        compares every group's LR with it (no audit without one, or for a plateau schedule)."""
        on = "lr_audit" in self.settings and isinstance(schedule, Schedule) and auditable(schedule)
        self.audit = LRAudit(schedule, list(lr_mults) if lr_mults is not None else None) if on else None

    def attach(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        loss_fn: Callable[[], torch.Tensor] | None = None,
        model: torch.nn.Module | None = None,
    ) -> Instruments:
        """Hook ``optimizer``; ``loss_fn`` (a closure computing the loss on a fixed batch) is
        read by the step probe and needed for the sharpness; ``model`` names the tensors of
        per-layer ratios (and has its buffers restored after a probe)."""
        self.detach()
        self.optimizer = optimizer
        self._model_watched = model is not None
        self.group_names = [str(g.get("name") or f"group{i}") for i, g in enumerate(optimizer.param_groups)]
        if model is not None:
            names = {id(p): n for n, p in model.named_parameters()}
            self.tensor_names = [names.get(id(p), f"param{i}") for i, p in
                                 enumerate(p for g in optimizer.param_groups for p in g["params"] if p.requires_grad)]  # fmt: skip
        if "sharpness" in self.settings:
            if loss_fn is None:
                raise ValueError(
                    "the sharpness instrument needs loss_fn= (a closure returning the loss on a fixed batch)"
                )
            self.sharpness = Sharpness(loss_fn, self.settings.sharpness_every, self.settings.sharpness_iters)
        # schedule-free: the point it trains at moves by a fraction of the step its z sequence
        # takes, so the probe would read that fraction as an LR too small: not probed
        if "step_probe" in self.settings and loss_fn is not None and not is_schedule_free(optimizer):
            self.probe = StepProbe(loss_fn, self.settings.probe_every, model)
        if "update_ratio" in self.settings or "warmup" in self.settings or "per_layer" in self.settings:
            self.ratio.attach(optimizer)
        self._hooks = [
            optimizer.register_step_pre_hook(self._pre),
            optimizer.register_step_post_hook(self._post),
        ]
        if model is not None and "eval_mode" in self.settings and is_schedule_free(optimizer):
            self._hooks.append(model.register_forward_pre_hook(self._forward))
        return self

    @_guarded
    def _forward(self, module: torch.nn.Module, args: Any) -> None:
        # an evaluation forward (eval mode or no gradient) while the optimizer is in train mode
        if (not module.training or not torch.is_grad_enabled()) and _schedule_free_in_train_mode(
            self.optimizer
        ):
            last = max(self._count() - 1, 0) + (self.offset or 0)  # the step taken last, as the caller numbers it
            self._found(words.eval_mode_finding(last), once="eval_mode")

    def detach(self) -> None:
        self.ratio.detach()
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @property
    def steps_taken(self) -> int:
        """The optimizer steps the hooks have seen."""
        return self._count()

    @_guarded
    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._note_lrs(self._count(), [_lr(g) for g in optimizer.param_groups])
        if self.probe is not None and self.probe.due(self._count()):
            judged, scale = self._probe_judge.gate(self._count(), self._lr_now, self._lr_peak)
            self._probe_gated = (judged and self._one_multiplier(optimizer), scale)
            self.probe.before(_trainable(optimizer))

    def _note_lrs(self, count: int, lrs: list[float]) -> None:
        """The LR of each group at optimizer step ``count``: the peak so far, and what the
        audit and the warmup check read."""
        self._lr_now = max(lrs, default=0.0)
        self._lr_peak = max(self._lr_peak, self._lr_now)
        if self.audit is not None or not self._warmup_done:
            self._lrs.append((count, lrs))

    def _count(self) -> int:
        # the update-ratio hook runs first and advances the count in its post-hook
        return self.ratio.step if self.ratio.attached else self._own_count

    @_guarded
    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self.ratio.attached:
            self._own_count += 1
        step = self._count() - 1
        if self.ratio.attached and step % self.ratio.every == 0:  # a step the ratio was measured at
            self._decayed[step] = self._lr_now < 0.5 * self._lr_peak
        if self.probe is not None and self.probe.armed:
            multiple = self.probe.after(_trainable(optimizer))[0]
            self._probe_pending.append((step, multiple, *self._probe_gated))
        if self.sharpness is not None and self.sharpness.due(step):
            value, limit, pre = self.sharpness.measure(optimizer)
            self._pending_sharpness.append((step, value, limit, pre))

    # ------------------------------------------------------------ feeding

    @_guarded
    def observe_update(
        self, count: int, lrs: Sequence[float], ratios: Sequence[float] | None, multiple: float | None = None
    ) -> None:
        """One optimizer step measured by its trainer instead of this panel's hooks (the
        vectorised trainer, which steps many runs' stacked weights at once): its 0-based
        ``count``, the LR per group, the update ratio per group and, on a probe's step, the
        step probe's multiple. Judged by the same rules as a hooked run's."""
        self.align(count)
        self._note_lrs(count, list(lrs))
        if ratios is not None:
            if not self.group_names:
                self.group_names = [f"group{i}" for i in range(len(ratios))]
            self._fed_ratios.append((count, [float(v) for v in ratios]))
            self._decayed[count] = self._lr_now < 0.5 * self._lr_peak
        if multiple is not None and "step_probe" in self.settings:
            judged, scale = self._probe_judge.gate(count, self._lr_now, self._lr_peak)
            self._probe_pending.append((count, float(multiple), judged, scale))
        self._own_count = count + 1

    @_guarded
    def align(self, step: int, *, taken: bool = False) -> None:
        """The caller's number of the step about to be taken or, with ``taken``, of the one just
        taken (its update already counted by the hooks): fixes the offset once."""
        if self.offset is None:
            count = self._count()
            self.shift = 1 if taken and count > 0 else 0
            self.offset = int(step) - count + self.shift

    @_guarded
    def observe_step(self, step: int, loss: float) -> None:
        """A recorded step (its caller's number) and its loss."""
        self.align(step)
        self._losses.append((int(step), float(loss)))

    @_guarded
    def observe_epoch(self, step: int) -> None:
        """An epoch's metrics recorded at ``step``: without a model to watch, a schedule-free
        optimizer still in train mode then was evaluated in it."""
        if "eval_mode" not in self.settings or self.optimizer is None or self._model_watched:
            return
        if _schedule_free_in_train_mode(self.optimizer):
            self._found(words.eval_mode_finding(step), once="eval_mode")

    @_guarded
    def observe_noise(self, step: int, small_sq: float, big_sq: float, b_small: float, b_big: float) -> None:
        """One pair of squared gradient norms at two batch sizes (see :mod:`lrlab.instruments.noise`)."""
        if self.noise is None:
            return
        value = self.noise.observe(small_sq, big_sq, b_small, b_big)
        self._point("noise_scale", step, value)
        self._point("critical_batch", step, value)

    # ------------------------------------------------------------ reading

    @_guarded
    def collect(self) -> None:
        """Read the hooks' values and run every rule over the steps recorded since the last call."""
        offset = self.offset or 0
        self._fed, self._fed_at = self._losses, 0
        self._collect_ratios(offset)
        self._feed_losses(math.inf)
        self._collect_audit(offset)
        self._collect_spikes()
        self._collect_probes(offset)
        for step, value, limit, pre in self._pending_sharpness:
            self._point("sharpness", step + offset, value)
            self._point("sharpness_limit", step + offset, limit)
            if math.isfinite(value) and value > limit:
                self._found(words.sharpness_finding(step + offset, value, limit, pre), once="sharpness")
        self._pending_sharpness = []

    def take(self) -> tuple[Series, list[Finding]]:
        """The series points and findings made since the last call (after :meth:`collect`)."""
        self.collect()
        if self.broken:
            self._series, self._findings = {}, []
        series, findings = self._series, self._findings
        self._series, self._findings = {}, []
        return series, findings

    # ------------------------------------------------------------ rules

    def _collect_ratios(self, offset: int) -> None:
        steps, rows = self.ratio.take()
        if self._fed_ratios:
            steps, rows = steps + [c for c, _r in self._fed_ratios], rows + [r for _c, r in self._fed_ratios]
            self._fed_ratios = []
        groups = len(self.group_names)
        for step, row in zip(steps, rows):
            at = step + offset
            decayed = self._decayed.pop(step, False)
            for g in range(min(groups, len(row))):
                if "update_ratio" in self.settings:
                    self._point(f"update_ratio/group{g}", at, row[g])
                self._judge_jump(at, g, row[g])
                self._remember(g, row[g])
            for t, name in enumerate(self.tensor_names[: max(0, len(row) - groups)]):
                self._point(f"update_ratio/{name}", at, row[groups + t])
            self._feed_losses(at)
            if "update_ratio" in self.settings:
                self._judge_ratios(at, decayed)
            if not self._warmup_done:
                self._judge_warmup(at)

    def _judge_jump(self, step: int, group: int, value: float) -> None:
        """An update that more than doubled in one step, far above the usual: the run turning unstable."""
        count = self._ratio_count.get(group, 0)
        recent = self._ratio_recent.get(group)
        if count < RATIO_JUMP_AFTER or not recent or "ratio_jump" in self._once or group in self._ratio_reported:
            return
        before = recent[-1]
        if value > RATIO_JUMP_FLOOR and math.isfinite(before) and value > RATIO_JUMP * before:
            self._found(words.jump_finding(step, self.group_names[group], before, value), once="ratio_jump")

    def _remember(self, group: int, value: float) -> None:
        first = self._ratio_first.setdefault(group, [])
        if len(first) < WARMUP_LATER[1]:
            first.append(value)
        self._ratio_recent.setdefault(group, deque(maxlen=RATIO_WINDOW)).append(value)
        self._ratio_count[group] = self._ratio_count.get(group, 0) + 1

    def _judge_ratios(self, step: int, decayed: bool) -> None:
        """A high ratio whenever; a low one only while the LR is at least half its peak so far
        (a schedule's warmup or decay lowers the ratio on purpose)."""
        for g, count in self._ratio_count.items():
            settled = count >= RATIO_SETTLED
            window = RATIO_WINDOW if settled else RATIO_WINDOW_EARLY
            if g in self._ratio_reported or count < window:
                continue
            history = list(self._ratio_recent[g])
            # inf: weights gone non-finite; NaN: a group with nothing to move (frozen), left out
            values = [v for v in history[-window:] if not math.isnan(v)]
            if len(values) < window:
                continue
            median = float(np.median(values))
            high = median > (RATIO_HIGH if settled else RATIO_HIGH_EARLY)
            low = settled and not decayed and 0 < median < RATIO_LOW
            if high or low:
                self._ratio_reported.add(g)
                self._found(words.ratio_finding(step, self.group_names[g], median, high))
            elif settled and not decayed and 0 < median < RATIO_SLOW:
                self._judge_slow(step, self.group_names[g], median)

    def _judge_slow(self, step: int, group: str, median: float) -> None:
        """A small update ratio is a finding only while the loss still falls steadily: the LR
        holds training back, it is not a model that trains well at small steps."""
        if "lr_low" in self._once or self._ring_count < LOSS_WINDOW:
            return
        window = np.roll(self._ring, -(self._ring_count % LOSS_WINDOW))  # oldest first
        if steady_fall(window):
            means = window.reshape(3, STEADY_BLOCK).mean(axis=1)
            self._found(words.slow_finding(step, group, median, [float(m) for m in means]), once="lr_low")

    def _feed_losses(self, upto: float) -> None:
        """The losses recorded up to step ``upto`` into the ring, each judged for divergence."""
        fed, at = self._fed, self._fed_at
        while at < len(fed) and fed[at][0] <= upto:
            step, loss = fed[at]
            at += 1
            if self._ring_count == 0:
                self._first_loss = loss
            self._ring[self._ring_count % LOSS_WINDOW] = loss
            self._ring_count += 1
            if "spikes" in self.settings and "divergence" not in self._once:
                self._judge_rise(step)
        self._fed_at = at

    def _judge_rise(self, step: int) -> None:
        last = float(self._ring[(self._ring_count - 1) % LOSS_WINDOW])
        if self._ring_count <= RISE_STEPS or not last > RISE_FACTOR * self._first_loss:
            return  # the common case, decided without building the window
        recent = [
            float(self._ring[(self._ring_count - k) % LOSS_WINDOW]) for k in range(RISE_STEPS + 1, 0, -1)
        ]
        if rising_far(recent, self._first_loss):
            self._found(words.divergence_finding(step, recent, self._first_loss), once="divergence")

    def _judge_warmup(self, step: int) -> None:
        """Once, at measured step WARMUP_LATER[1]: the first steps the largest of a run whose LR
        did not warm up, and its loss stalled far above its first value (``warmup.needs_warmup``)."""
        firsts = self._ratio_first.values()
        if not firsts or max(len(h) for h in firsts) < WARMUP_LATER[1]:
            return
        self._warmup_done = True
        early = max(_median(h[:WARMUP_EARLY]) for h in firsts)
        later = max(_median(h[WARMUP_LATER[0] : WARMUP_LATER[1]]) for h in firsts)
        # the LRs of this collect's steps too: the audit moves them into _first_lrs after the ratios
        seen = (self._first_lrs + self._lrs)[: WARMUP_LATER[1]]
        lrs = [max(v) for _s, v in seen if v]
        warmed = bool(lrs) and lrs[0] < 0.5 * max(lrs)
        # the rule compares steps at about the same LR: where the schedule has already halved it by
        # steps 50-100 (an exponential decay), the later steps are smaller by design, not judged
        decayed = len(lrs) >= WARMUP_LATER[1] and _median(lrs[WARMUP_LATER[0] :]) < 0.5 * _median(lrs[:WARMUP_EARLY])
        if decayed:
            return
        window = np.roll(self._ring, -(self._ring_count % LOSS_WINDOW))  # oldest first
        seen_steps, first = self._ring_count, self._first_loss
        if seen_steps >= LOSS_WINDOW and needs_warmup(early, later, warmed, window, first, seen_steps):
            drop, progress = loss_stall(window, first, seen_steps) or (math.nan, math.nan)
            self._found(words.warmup_finding(step, early, later, WARMUP_EARLY, (drop, progress, first)))

    def _one_multiplier(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether every group is meant at the same LR multiplier. Where they differ (a body
        slowed on purpose) the update mixes LRs the user chose apart: the probe's multiple is
        recorded, not judged (the LR audit checks the multipliers)."""
        groups = optimizer.param_groups
        if self.audit is not None and self.audit.lr_mults:
            mults = [self.audit.mult(g) for g in range(len(groups))]
        else:
            mults = [float(g.get("lr_mult", 1.0)) for g in groups]
        return len(set(mults)) <= 1

    def _collect_probes(self, offset: int) -> None:
        """The probes' multiples as a series (clipped to +-1e3: ``inf`` is "no bottom in sight"),
        each judged by the probe's rule (:class:`lrlab.instruments.probe.ProbeJudge`)."""
        pending, self._probe_pending = self._probe_pending, []
        for step, multiple, judged, scale in pending:
            if math.isnan(multiple):
                continue
            self._point("step_probe", step + offset, min(max(multiple, -1e3), 1e3))
            finding = self._probe_judge.judge(step + offset, multiple, judged, scale)
            if finding is not None:
                self._found(finding, once="lr_low")

    def _collect_audit(self, offset: int) -> None:
        entries, self._lrs = self._lrs, []
        if not self._warmup_done and len(self._first_lrs) < WARMUP_LATER[1]:
            self._first_lrs += entries[: WARMUP_LATER[1] - len(self._first_lrs)]
        if self.audit is None or not entries:
            return
        for count, lrs in entries:
            at = max(count + offset, 0)
            ratios, found = self.audit.observe(max(at - self.shift, 0), lrs)  # at the schedule's index
            for g, value in enumerate(ratios):
                self._point(f"lr_audit/group{g}", at, value)
            for miss in found:
                name = (
                    self.group_names[miss.group]
                    if miss.group < len(self.group_names)
                    else f"group{miss.group}"
                )
                self._found(
                    words.audit_finding(
                        miss.step + self.shift, name, miss.actual, miss.intended, self.audit.mult(miss.group)
                    )
                )

    def _collect_spikes(self) -> None:
        losses, self._losses = self._losses, []
        if self.spikes is None:
            return
        for step, loss in losses:
            limit = self.spikes.observe(loss)
            if limit is None:
                continue
            self._spike_count += 1
            if step - self._last_spike >= SPIKE_REPEAT:
                self._last_spike = step
                self._found(
                    words.spike_finding(step, loss, limit, self.spikes.rule.describe(), self._spike_count)
                )

    # ------------------------------------------------------------ plumbing

    def _point(self, name: str, step: int, value: float) -> None:
        steps, values = self._series.setdefault(name, ([], []))
        steps.append(int(step))
        values.append(float(value))

    def _found(self, finding: Finding, once: str | None = None) -> None:
        if once is not None:
            if once in self._once:
                return
            self._once.add(once)
        self._findings.append(finding)
        if self.on_finding is not None:
            self.on_finding(finding)


def _trainable(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]


def _lr(group: dict[str, Any]) -> float:
    lr = group["lr"]
    return float(lr.detach()) if isinstance(lr, torch.Tensor) else float(lr)


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan


def _schedule_free_in_train_mode(optimizer: Any) -> bool:
    if not is_schedule_free(optimizer):
        return False
    groups = getattr(optimizer, "param_groups", None) or [{}]
    return bool(groups[0].get("train_mode", getattr(optimizer, "train_mode", False)))
