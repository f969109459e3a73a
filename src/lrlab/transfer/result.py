"""What a transfer found: the predicted LR at the target with its interval, the fitted slope,
each proxy's optimum, the prediction in words, the code and the report."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lrlab.formatting import num, round_sig
from lrlab.transfer.selfcheck import Check, SelfCheck, Stability, self_check, stability_check

if TYPE_CHECKING:
    from lrlab.core.bracket import Optimum, PowerLaw
    from lrlab.schedules import Schedule

__all__ = ["TransferResult"]


@dataclass(frozen=True)
class TransferResult:
    """A transfer's prediction. ``law`` is the fitted power law (``lrlab.core.bracket``),
    ``scales`` the proxies' values on the axis and ``proxies`` their optima, in that order;
    ``target_steps`` the target run's optimizer steps and ``proxy_steps`` each proxy's.

    Two checks read the proxies before the prediction is handed out (:mod:`lrlab.transfer.selfcheck`):
    ``self_check`` (the law fitted without the proxy nearest the target, tested on it; a miss
    beyond the intervals widens ``interval``) and ``stability`` (a proxy that diverged at or
    below the predicted LR flags it). ``checks`` lists both; the words say any that failed.
    Beyond the proxies' range ``interval`` also carries the extrapolation error measured on
    tuning ladders (:mod:`lrlab.transfer.extrapolation`)."""

    name: str
    axis: str
    target: float
    optimizer: str
    schedule: str
    seeds: int
    parametrization: str
    law: PowerLaw
    scales: tuple[float, ...]
    proxies: tuple[Optimum, ...]
    target_steps: int
    proxy_steps: tuple[int, ...]
    store_path: Path
    sweeps: tuple[str, ...]

    @property
    def lr(self) -> float:
        """The predicted optimal peak LR at the target."""
        return float(self.law.lr)

    @property
    def interval(self) -> tuple[float, float]:
        """The prediction's interval at ``level`` (80 % by default): (low, high), the law's own
        widened by the self-check when the law missed the proxy it was tested on
        (:attr:`checked_interval`), then by the extrapolation error of a law carried
        :attr:`extrapolation_octaves` beyond its proxies (:func:`lrlab.transfer.extrapolation.widen`)."""
        from lrlab.transfer.extrapolation import widen

        low, high = self.checked_interval
        return widen(self.lr, low, high, self.extrapolation_octaves, self.level)

    @property
    def checked_interval(self) -> tuple[float, float]:
        """The law's own interval after the self-check, before the extrapolation error."""
        return self.self_check.interval

    @property
    def extrapolation_octaves(self) -> float:
        """How many octaves the target lies beyond the proxies' range (0 inside it)."""
        from lrlab.transfer.extrapolation import beyond

        return beyond(self.target, self.scales)

    @property
    def law_interval(self) -> tuple[float, float]:
        """The fitted law's own interval, before the self-check."""
        return float(self.law.low), float(self.law.high)

    @cached_property
    def self_check(self) -> SelfCheck:
        """The law fitted on all proxies but the one nearest the target, tested on it
        (:func:`lrlab.transfer.selfcheck.self_check`)."""
        return self_check(self.scales, self.proxies, self.law)

    @cached_property
    def stability(self) -> Stability:
        """Where the proxies diverged against the predicted LR (:func:`lrlab.transfer.selfcheck.stability_check`)."""
        return stability_check(self.scales, self.proxies, self.lr)

    @property
    def checks(self) -> tuple[Check, ...]:
        """The self-check and the stability check, each passed or not with its line in words."""
        return self.self_check.check(self.axis), self.stability.check(self.axis)

    @property
    def level(self) -> float:
        return float(self.law.level)

    @property
    def slope(self) -> float:
        """The slope of log LR* against log scale: LR* moves as scale**slope."""
        return float(self.law.slope)

    @property
    def slope_interval(self) -> tuple[float, float]:
        return float(self.law.slope_low), float(self.law.slope_high)

    @property
    def transfers_unchanged(self) -> bool:
        """Whether the slope's interval contains 0: the proxies' LR holds at the target."""
        return bool(self.law.transfers_unchanged)

    def lr_at(self, scale: float) -> float:
        """The fitted law's optimum at another ``scale`` of the axis."""
        return self.law.predict(float(scale))

    def schedule_for(self, total_steps: int | None = None) -> Schedule:
        """The schedule at the predicted LR over ``total_steps`` optimizer steps (default: the
        target run's). A run of another length takes the LR its length calls for: on the
        ``steps`` axis the fitted law's, on the others the run-length law
        (:mod:`lrlab.core.horizon`, from the proxies' run length); either warns in one line
        when the run is longer than what was measured."""
        from lrlab.transfer.proxies import build_schedule

        steps = self.target_steps if total_steps is None else total_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"total_steps must be a whole number >= 1, got {total_steps!r}")
        per_epoch = (
            max(1, self.proxy_steps[-1] // max(1, int(self.scales[-1]))) if self.axis == "steps" else 1
        )
        return build_schedule(self.schedule, round_sig(self._lr_for(steps)), steps, per_epoch)

    def _lr_for(self, steps: int) -> float:
        """The predicted LR for a run of ``steps`` optimizer steps (see :meth:`schedule_for`)."""
        if steps == self.target_steps:
            return self.lr
        if self.axis == "steps":
            lr = self.lr_at(self.target * steps / self.target_steps)
            if steps > self.target_steps:
                warnings.warn(
                    f"a run of {steps} steps is longer than the {self.target_steps} the transfer predicted: its LR "
                    f"{num(lr)} extrapolates the law (slope {num(self.slope, 3)}) further",
                    stacklevel=3,
                )
            return lr
        from lrlab.core.horizon import horizon_advice

        advice = horizon_advice(self.target_steps, steps, measured="the transfer's runs")
        if advice.warning is not None:
            warnings.warn(advice.warning, stacklevel=3)
        return self.lr * advice.factor

    def code(self) -> dict[str, str]:
        """Code to paste for PyTorch, Lightning, Hugging Face and Keras, at the predicted LR,
        the schedule's step counts written as fractions of the user's run."""
        from lrlab.study.codegen import (
            hf_snippet,
            horizon_note,
            keras_snippet,
            lightning_snippet,
            torch_snippet,
        )

        spec, steps = str(self.schedule_for()), self.target_steps
        note = "".join(f"# {line}\n" for line in (self.sentence(), *self._failed()))
        snippets = {
            "PyTorch": torch_snippet(self.optimizer, spec, study_steps=steps),
            "Lightning": lightning_snippet(self.optimizer, spec, study_steps=steps),
            "Hugging Face": hf_snippet(self.optimizer, spec, study_steps=steps),
            "Keras": keras_snippet(self.optimizer, spec, study_steps=steps),
        }
        # The run-length note speaks of the study's runs: here the runs measured are the proxies'.
        study, proxies = horizon_note(steps), horizon_note(steps, measured="the proxies'")
        return {k: note + v.replace(study, proxies) for k, v in snippets.items()}

    def sentence(self) -> str:
        """The prediction in one line."""
        low, high = self.interval
        return (
            f"predicted optimal LR at {self.axis} {num(self.target)}: {num(self.lr, 3)} "
            f"({self.level:.0%} interval {num(low, 3)} to {num(high, 3)}) for {self.optimizer} with {self.schedule}"
        )

    def lines(self) -> list[str]:
        """The prediction in words: the LR, the slope and whether the LR transfers unchanged."""
        slope_low, slope_high = self.slope_interval
        proxies = ", ".join(num(s) for s in self.scales)
        slope = (
            f"LR* ~ {self.axis}^{num(self.slope, 2)} ({self.level:.0%} interval {num(slope_low, 2)} to "
            f"{num(slope_high, 2)}), fitted on {self.axis} {proxies}, {self.seeds} seed(s) each"
        )
        first = self.sentence()
        out = [first[0].upper() + first[1:], slope]
        if self.transfers_unchanged:
            out.append(
                "the LR transfers unchanged: the slope's interval contains 0, so the proxies' optimum "
                f"(about {num(self.proxies[-1].lr, 3)}) holds at the target within what was measured"
            )
        else:
            from lrlab.transfer.extrapolation import TUNING_ERRORS

            reuse = self.proxies[-1].lr
            law_error, reuse_error = TUNING_ERRORS
            text = (
                f"reusing the largest proxy's optimum ({num(reuse, 3)}) at the target would be "
                f"{num(reuse / self.lr, 2)}x the prediction"
            )
            if self.extrapolation_octaves > 0:
                text += (
                    f" (8x beyond proxies on tuning ladders, reusing erred by {num(reuse_error, 3)} octaves on "
                    f"average, the law by {num(law_error, 3)}: weigh both)"
                )
            out.append(text)
        out.append(self.self_check.sentence(self.axis))
        if self.extrapolation_octaves > 0:
            out.append(self._extrapolation_words())
        out.extend(c.words for c in self.checks if c.name != "self-check" and not c.passed)
        if self.parametrization != "standard":
            out.append(f"parametrization: {self.parametrization}")
        return out

    def _extrapolation_words(self) -> str:
        from lrlab.transfer.extrapolation import EXTRAPOLATION_SD, MEASURED_OCTAVES, added

        low, high = self.checked_interval
        octaves = self.extrapolation_octaves
        text = (
            f"the target lies {num(octaves, 2)} octaves beyond the proxies: the interval carries the error of a law "
            f"carried that far ({num(EXTRAPOLATION_SD, 2)} octaves of LR per octave of scale, measured on tuning "
            f"ladders), {num(low, 3)} to {num(high, 3)} without it"
        )
        if octaves > MEASURED_OCTAVES:
            text += (
                f" (that error was measured {num(MEASURED_OCTAVES)} octaves out; its growth beyond is assumed "
                "linear, not measured)"
            )
        if octaves <= 1:
            return text + "; proxies closer to the target narrow it"
        nearer = self.target / 2 if self.target > max(self.scales) else self.target * 2
        return (
            f"{text}; a proxy one octave from the target ({self.axis} {num(nearer)}) would add "
            f"+-{num(added(1.0, self.level), 2)} octaves instead of +-{num(added(octaves, self.level), 2)}"
        )

    def _failed(self) -> list[str]:
        """The checks that failed, in words (for the code's comments)."""
        return [c.words for c in self.checks if not c.passed]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def report(self, path: str | Path) -> Path:
        """Write the HTML report (the figure, the proxies' table, the prediction and the
        code) to ``path``, and the figure as a PNG beside it (``<stem>.png``)."""
        from lrlab.transfer.figure import write_report

        return write_report(self, Path(path))
