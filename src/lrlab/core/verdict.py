"""The study's verdict as a typed record: what ``lrlab study`` printed, ``recommendation.md``
holds and the report page opens with.

A :class:`StudyVerdict` is built once by the study (``lrlab.study.summary.study_verdict``),
stored with :meth:`StudyVerdict.to_dict` in the study's own sweep record, and read back with
:meth:`StudyVerdict.from_dict`. Its stored form is the flat JSON object the study has always
written (the leaderboard a list of flat rows), so stores written before this record existed
read back unchanged; :meth:`~StudyVerdict.from_dict` also reads the rows of the first stored
form, which had no ``diverged``/``next_diverged``.

The rule's two constants are spelled here once: :data:`NOISE_SE` and :data:`TIE_RULE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NOISE_SE",
    "TIE_RULE",
    "Compute",
    "FamilyOptimum",
    "LeaderboardRow",
    "LrFreeLine",
    "Margin",
    "RangeTestLine",
    "StudyVerdict",
    "TieRule",
]

NOISE_SE = 2.0
"""A margin must exceed this many standard errors of the paired differences to count."""

TIE_RULE = (
    "the configuration with fewer diverged seeds, then the schedule with fewer knobs, then the lower seed sd, "
    "then the smaller LR"
)
"""Who a tie within the seed noise goes to, in words (``lrlab.study.recommend.simplicity``)."""


@dataclass(frozen=True)
class Margin:
    """A score margin between two configurations, judged against the paired seed noise.

    ``value`` is positive when the first is better (None: no margin drawn); ``noise`` is
    :data:`NOISE_SE` standard errors of the per-seed differences over ``shared_seeds``
    seeds (None: fewer than two shared seeds, no estimate)."""

    value: float | None = None
    noise: float | None = None
    shared_seeds: int = 0

    @property
    def within_noise(self) -> bool | None:
        """Whether the margin is within the noise; None when either is unknown."""
        if self.value is None or self.noise is None:
            return None
        return self.value <= self.noise


@dataclass(frozen=True)
class LeaderboardRow:
    """One configuration of the study, in the study's order (finalists first)."""

    optimizer: str
    schedule: str  # its short name ("cosine")
    spec: str  # the schedule as measured
    peak_lr: float
    score: float  # mean over the seeds that finished
    sd: float
    seeds: int  # seeds that finished
    accuracy: float | None = None
    finalist: bool = True
    run_ids: tuple[str, ...] = ()
    recommended: bool = False
    diverged: int = 0  # seeds that diverged (not in score or sd)
    to_next: Margin = field(default_factory=Margin)  # over the next row, within the same rung
    next_diverged: bool = False  # the next row is below for a diverged seed, whatever its mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer, "schedule": self.schedule, "spec": self.spec, "peak_lr": self.peak_lr,
            "score": self.score, "sd": self.sd, "seeds": self.seeds, "accuracy": self.accuracy,
            "finalist": self.finalist, "run_ids": list(self.run_ids), "recommended": self.recommended,
            "diverged": self.diverged, "margin": self.to_next.value, "noise": self.to_next.noise,
            "shared_seeds": self.to_next.shared_seeds, "within_noise": self.to_next.within_noise,
            "next_diverged": self.next_diverged,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> LeaderboardRow:
        return cls(
            optimizer=str(row["optimizer"]), schedule=str(row["schedule"]), spec=str(row["spec"]),
            peak_lr=float(row["peak_lr"]), score=float(row["score"]), sd=float(row["sd"]), seeds=int(row["seeds"]),
            accuracy=_float_or_none(row["accuracy"]), finalist=bool(row["finalist"]),
            run_ids=tuple(str(i) for i in row["run_ids"]), recommended=bool(row["recommended"]),
            diverged=int(row.get("diverged", 0)),  # absent from the first stored form
            to_next=Margin(_float_or_none(row["margin"]), _float_or_none(row["noise"]), int(row["shared_seeds"])),
            next_diverged=bool(row.get("next_diverged", False)),  # absent from the first stored form
        )  # fmt: skip


@dataclass(frozen=True)
class TieRule:
    """The rule that judged the two best finalists, and what it did here."""

    noise_se: float = NOISE_SE
    rule: str = TIE_RULE
    tie: bool = False  # the margin of the top two was within the noise
    broken: bool = False  # the tie went to the second-best mean (the simpler configuration)
    reason: str | None = None  # why, ending in "(a tie goes to <rule>)"; None without a tie


@dataclass(frozen=True)
class RangeTestLine:
    """A range test the study ran: its optimizer, the LR it recommended, by which rule, in
    how many steps."""

    optimizer: str
    lr: float
    rule: str | None = None
    iterations: int | None = None


@dataclass(frozen=True)
class Compute:
    """What the study trained: its runs across its sweeps, the successive-halving cut
    (``finalists`` configurations trained with every seed of ``seeds``), and how many
    runs diverged."""

    run_ids: tuple[str, ...] = ()
    sweeps: tuple[str, ...] = ()
    finalists: int | None = None
    seeds: tuple[int, ...] = ()
    diverged: int = 0

    @property
    def runs(self) -> int:
        return len(self.run_ids)


@dataclass(frozen=True)
class LrFreeLine:
    """An LR-free optimizer of the study (schedule-free, Prodigy, D-Adaptation) against the
    recommendation: its best configuration, the margin judged against the paired seed noise,
    the compute it took and, for an LR estimator, how far its estimate moved.

    ``margin`` is the recommendation's score advantage over it (positive: the LR-free one is
    behind); when the LR-free configuration *is* the recommendation, ``versus`` names the best
    configuration of an ordinary optimizer and ``margin`` is its advantage over that one.
    ``verdict`` is ``"ties"``, ``"behind"``, ``"ahead"``, ``"unknown"`` (fewer than two
    shared seeds) or ``"none"`` (no configuration finished). ``steps`` counts its optimizer
    steps (runs and range test), ``study_steps`` the whole study's. ``estimate_first`` and
    ``estimate_last`` are the LR the estimator used at its first and last step (its estimate
    times the schedule's multiplier removed: ``d * lr`` over the multiplier), ``estimate_tail``
    their growth over the last tenth of the run; None for schedule-free optimizers. ``text``
    is the line as printed (also in :attr:`StudyVerdict.lines`)."""

    optimizer: str
    family: str  # "schedule-free" or "estimator"
    schedule: str = ""
    lr: float | None = None
    score: float | None = None
    sd: float | None = None
    seeds: int = 0
    versus: str = ""
    margin: Margin = field(default_factory=Margin)
    verdict: str = "none"
    promoted: bool = False  # promoted to every seed as a contender (it missed the cut)
    steps: int = 0
    study_steps: int = 0
    estimate_first: float | None = None
    estimate_last: float | None = None
    estimate_tail: float | None = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer, "family": self.family, "schedule": self.schedule, "lr": self.lr,
            "score": self.score, "sd": self.sd, "seeds": self.seeds, "versus": self.versus,
            "margin": self.margin.value, "noise": self.margin.noise, "shared_seeds": self.margin.shared_seeds,
            "verdict": self.verdict, "promoted": self.promoted, "steps": self.steps,
            "study_steps": self.study_steps, "estimate_first": self.estimate_first,
            "estimate_last": self.estimate_last, "estimate_tail": self.estimate_tail, "text": self.text,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LrFreeLine:
        return cls(
            optimizer=str(d["optimizer"]), family=str(d["family"]), schedule=str(d["schedule"]),
            lr=_float_or_none(d["lr"]), score=_float_or_none(d["score"]), sd=_float_or_none(d["sd"]),
            seeds=int(d["seeds"]), versus=str(d["versus"]),
            margin=Margin(_float_or_none(d["margin"]), _float_or_none(d["noise"]), int(d["shared_seeds"])),
            verdict=str(d["verdict"]), promoted=bool(d["promoted"]), steps=int(d["steps"]),
            study_steps=int(d["study_steps"]), estimate_first=_float_or_none(d["estimate_first"]),
            estimate_last=_float_or_none(d["estimate_last"]), estimate_tail=_float_or_none(d["estimate_tail"]),
            text=str(d["text"]),
        )  # fmt: skip


@dataclass(frozen=True)
class FamilyOptimum:
    """Where one schedule family's best peak LR lies, for one optimizer: the vertex of a
    fit in log LR (two half-parabolas over five LRs, a parabola over three) over the LRs the study tried (``lrlab.core.bracket``), with its
    interval at ``level``.

    ``seeds`` is how many seeds the fit used: every seed of the budget for the
    recommendation's family (its interval is bootstrapped over them), one for the others
    (their interval is the grid's resolution). ``bracketed`` says whether a worse (or
    diverged) LR lies on both sides of the best tried one; ``edge`` (``"low"``/``"high"``)
    where the best tried LR is the smallest/largest and nothing beyond it was worse.
    ``tried`` are the peak LRs trained, ``extra`` how many of them the bracketing added
    beyond the budget's factors. ``text`` is the family's line in words."""

    optimizer: str
    schedule: str
    lr: float | None  # None: every LR diverged
    low: float | None
    high: float | None
    level: float
    bracketed: bool
    edge: str | None
    best_lr: float | None
    seeds: int
    tried: tuple[float, ...] = ()
    extra: int = 0
    recommended: bool = False
    reason: str = ""
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer, "schedule": self.schedule, "lr": self.lr, "low": self.low,
            "high": self.high, "level": self.level, "bracketed": self.bracketed, "edge": self.edge,
            "best_lr": self.best_lr, "seeds": self.seeds, "tried": list(self.tried), "extra": self.extra,
            "recommended": self.recommended, "reason": self.reason, "text": self.text,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FamilyOptimum:
        return cls(
            optimizer=str(d["optimizer"]), schedule=str(d["schedule"]), lr=_float_or_none(d["lr"]),
            low=_float_or_none(d["low"]), high=_float_or_none(d["high"]), level=float(d["level"]),
            bracketed=bool(d["bracketed"]), edge=None if d["edge"] is None else str(d["edge"]),
            best_lr=_float_or_none(d["best_lr"]), seeds=int(d["seeds"]),
            tried=tuple(float(v) for v in d.get("tried", ())), extra=int(d.get("extra", 0)),
            recommended=bool(d.get("recommended", False)), reason=str(d.get("reason", "")),
            text=str(d.get("text", "")),
        )  # fmt: skip


@dataclass(frozen=True)
class StudyVerdict:
    """The study's verdict: its words (``lines``), its leaderboard, the tie rule, the
    margin of the top two against the seed noise, the compute spent and the range tests.

    ``lines`` are the verdict as the CLI prints it: the recommendation and its score first
    (:attr:`answer`), then the margins (:attr:`details`).
    """

    name: str
    task: str
    budget: str
    epochs: int
    total_steps: int
    metric: str
    metric_words: str  # the metric in a sentence ("validation loss (MSE)")
    higher_is_better: bool
    lines: tuple[str, ...]
    leaderboard: tuple[LeaderboardRow, ...]
    tie: TieRule = field(default_factory=TieRule)
    top_two: Margin = field(default_factory=Margin)  # the best finalist over the runner-up
    compute: Compute = field(default_factory=Compute)
    range_tests: tuple[RangeTestLine, ...] = ()
    lr_free: tuple[LrFreeLine, ...] = ()  # one per LR-free optimizer in the study (their lines end ``lines``)
    optima: tuple[FamilyOptimum, ...] = ()  # each optimizer x family's optimum LR (none in older stores)

    @property
    def headline(self) -> str:
        """The first line: what is recommended."""
        return self.lines[0] if self.lines else ""

    @property
    def answer(self) -> tuple[str, ...]:
        """The recommendation and its score."""
        return self.lines[:2]

    @property
    def details(self) -> tuple[str, ...]:
        """The margins over the runner-up and the best constant LR, the diverged runs."""
        return self.lines[2:]

    @property
    def optimum(self) -> FamilyOptimum | None:
        """The recommendation's family's optimum, fitted over every seed (None: not fitted)."""
        return next((o for o in self.optima if o.recommended), None)

    @property
    def recommended(self) -> LeaderboardRow | None:
        """The recommended configuration's row."""
        return next((row for row in self.leaderboard if row.recommended), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, in the form the study's sweep record has always held (``lr_free``
        only where the study had an LR-free optimizer, ``optima`` only where it fitted them, so
        older records write back unchanged)."""
        out = {
            "name": self.name, "task": self.task, "budget": self.budget, "epochs": self.epochs,
            "total_steps": self.total_steps, "metric": self.metric, "metric_words": self.metric_words,
            "higher_is_better": self.higher_is_better, "lines": list(self.lines),
            "leaderboard": [row.to_dict() for row in self.leaderboard],
            "tie": self.tie.tie, "tie_rule": self.tie.rule, "tie_reason": self.tie.reason,
            "tie_broken": self.tie.broken, "margin": self.top_two.value, "noise": self.top_two.noise,
            "noise_se": self.tie.noise_se, "shared_seeds": self.top_two.shared_seeds,
            "diverged": self.compute.diverged, "runs": self.compute.runs, "run_ids": list(self.compute.run_ids),
            "sweeps": list(self.compute.sweeps), "finalists": self.compute.finalists,
            "seeds": list(self.compute.seeds) if self.compute.seeds else None,
            "range_tests": {t.optimizer: {"lr": t.lr, "rule": t.rule, "iterations": t.iterations}
                            for t in self.range_tests},
        }  # fmt: skip
        if self.lr_free:
            out["lr_free"] = [line.to_dict() for line in self.lr_free]
        if self.optima:
            out["optima"] = [optimum.to_dict() for optimum in self.optima]
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> StudyVerdict:
        """Read a stored verdict (every form the study has stored). Raises ``ValueError``
        naming the first missing key when ``record`` is not a study's verdict."""
        try:
            return cls._read(record)
        except KeyError as exc:
            raise ValueError(f"not a study verdict record: no {exc.args[0]!r}") from None

    @classmethod
    def _read(cls, d: Mapping[str, Any]) -> StudyVerdict:
        seeds = d["seeds"] or ()
        return cls(
            name=str(d["name"]), task=str(d["task"]), budget=str(d["budget"]), epochs=int(d["epochs"]),
            total_steps=int(d["total_steps"]), metric=str(d["metric"]), metric_words=str(d["metric_words"]),
            higher_is_better=bool(d["higher_is_better"]), lines=tuple(str(line) for line in d["lines"]),
            leaderboard=tuple(LeaderboardRow.from_dict(row) for row in d["leaderboard"]),
            tie=TieRule(float(d["noise_se"]), str(d["tie_rule"]), bool(d["tie"]), bool(d["tie_broken"]),
                        None if d["tie_reason"] is None else str(d["tie_reason"])),
            top_two=Margin(_float_or_none(d["margin"]), _float_or_none(d["noise"]), int(d["shared_seeds"])),
            compute=Compute(tuple(str(i) for i in d["run_ids"]), tuple(str(s) for s in d["sweeps"]),
                            None if d["finalists"] is None else int(d["finalists"]), tuple(int(s) for s in seeds),
                            int(d["diverged"])),
            range_tests=tuple(
                RangeTestLine(str(name), float(t["lr"]), None if t["rule"] is None else str(t["rule"]),
                              None if t["iterations"] is None else int(t["iterations"]))
                for name, t in d["range_tests"].items()
            ),
            lr_free=tuple(LrFreeLine.from_dict(line) for line in d.get("lr_free", ())),  # absent before
            optima=tuple(FamilyOptimum.from_dict(o) for o in d.get("optima", ())),  # absent before
        )  # fmt: skip


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
