"""The study's answer for REINFORCE on CartPole-v1, checked on seeds the study never saw.

    python examples/cartpole_heldout.py                  # writes docs/img/rl_*.png and docs/rl.md's results
    python examples/cartpole_heldout.py --docs /tmp/rl   # the same elsewhere (rl.md created there)
    python examples/cartpole_heldout.py --train examples/cartpole.py:actor_critic \
        --images rl_a2c --section cartpole-a2c-heldout   # the same for A2C

1. The study: ``lrlab.study`` of ``examples/cartpole.py:reinforce`` with Adam over the
   constant, cyclic (triangular) and one-cycle families, on its own seeds (0, 1, 2).
2. Held out: the study's recommendation, its best constant LR, and the best configuration
   of each family (by the study's ranking), each trained again with 5 seeds the study never
   used (100 to 104), exactly as the study ran them (same length, schedule, momentum).
3. The comparison: the recommendation against the best constant (against the best other
   family when the recommendation is a constant), paired seed by seed; a margin within two
   standard errors of the per-seed differences is said to be a tie.
4. The pictures (``rl_schedules.png``: mean return against episodes, mean and the range over
   the held-out seeds; ``rl_study.png``: the study's final return against the peak LR per
   family; ``rl_heldout.png``: the paired comparison) and the text between the markers of
   ``rl.md``. Everything is read back from the run store, as the report does.

Re-running resumes: finished runs are read from the store (``--db``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrlab.core.records import RunConfig, RunRecord, RunStatus
from lrlab.files import write_text
from lrlab.plot import save_figure
from lrlab.plot.spec import FigureSpec, Panel, Trace, VLine, color
from lrlab.schedules import Schedule
from lrlab.store.sqlite import Store
from lrlab.study.recommend import Candidate
from lrlab.study.run import StudyResult, run_study
from lrlab.sweeps.executors import run_plans
from lrlab.sweeps.grid import RunPlan
from lrlab.training.tasks import get_task

HERE = Path(__file__).resolve().parent
TRAIN = f"{HERE / 'cartpole.py'}:reinforce"
FAMILIES = ("constant", "triangular", "one-cycle")
HELDOUT_SEEDS = (100, 101, 102, 103, 104)
SOLVED = 475.0  # CartPole-v1's reward threshold in gymnasium's registry
NOISE_SE = 2.0  # a margin within this many paired standard errors is a tie
SWEEP = "cartpole-heldout"
BASELINE = "baseline"  # the role of what the recommendation is compared with, seed by seed
AGENTS = {"reinforce": "REINFORCE", "actor_critic": "A2C"}


@dataclass(frozen=True)
class Curves:
    """One configuration on the held-out seeds: ``returns[seed, epoch]`` against ``episodes``."""

    label: str
    candidate: Candidate
    episodes: np.ndarray
    returns: np.ndarray
    env_steps: np.ndarray
    greedy: np.ndarray  # per seed: the greedy policy's mean return after the last epoch

    @property
    def final(self) -> np.ndarray:
        return self.returns[:, -1]


# ---------------------------------------------------------------- running


def study(store: Store, train: str, jobs: int, out: Path, fresh: bool) -> StudyResult:
    """The study, as ``lrlab study --train TRAIN --optimizers adam --schedules constant,triangular,one-cycle
    --epochs E`` runs it, E the function's own epochs (its whole length, not a budget's share)."""
    epochs = get_task(train).trainable.epochs
    return run_study(
        train, store, optimizers=("adam",), schedules=FAMILIES, jobs=jobs, out=out, epochs=epochs, fresh=fresh
    )


def best_per_family(result: StudyResult) -> dict[str, Candidate]:
    """Each family's best candidate by the study's own score (its seeds only)."""
    sign = -1.0 if result.recommendation.higher_is_better else 1.0
    best: dict[str, Candidate] = {}
    for candidate in result.recommendation.candidates:
        held = best.get(candidate.schedule_name)
        if not math.isnan(candidate.score) and (held is None or sign * candidate.score < sign * held.score):
            best[candidate.schedule_name] = candidate
    return best


def baseline_role(result: StudyResult) -> dict[str, Candidate]:
    """What the recommendation is compared with: the best constant LR, or, when the
    recommendation is itself a constant, the best configuration of another family."""
    rec = result.recommendation
    if rec.best_constant is not None and not rec.best.is_constant:
        return {BASELINE: rec.best_constant}
    others = [c for name, c in best_per_family(result).items() if name != rec.best.schedule_name]
    if not others:
        raise SystemExit("the study has no other configuration to compare its recommendation with")
    sign = -1.0 if rec.higher_is_better else 1.0
    return {BASELINE: min(others, key=lambda c: sign * c.score)}


def baseline_name(all_curves: dict[str, Curves]) -> str:
    """The baseline in words: "best constant" or "best <family>"."""
    name = all_curves[BASELINE].candidate.schedule_name
    return f"best {name}" if all_curves["recommended"].candidate.schedule_name != name else "best other"


def heldout_configs(store: Store, candidate: Candidate, seeds: Sequence[int]) -> list[RunConfig]:
    """The candidate's own study run, again with each held-out seed."""
    ran = store.run(candidate.run_ids[0]).config
    return [ran.replace(seed=seed) for seed in seeds]


def train_heldout(
    store: Store, train: str, chosen: dict[str, Candidate], seeds: Sequence[int], jobs: int
) -> dict[str, list[RunRecord]]:
    """Every chosen candidate on every held-out seed, one sweep; records by label."""
    configs = {label: heldout_configs(store, c, seeds) for label, c in chosen.items()}
    plans = [RunPlan.of(SWEEP, cfg) for cfgs in configs.values() for cfg in cfgs]
    spec = {"train": train, "seeds": list(seeds)}
    records = run_plans(list(dict.fromkeys(plans)), store, SWEEP, spec, jobs=jobs, task=get_task(train))
    by_id = {record.id: record for record in records}
    return {label: [by_id[RunPlan.of(SWEEP, cfg).id] for cfg in cfgs] for label, cfgs in configs.items()}


def curves(store: Store, label: str, candidate: Candidate, records: Sequence[RunRecord]) -> Curves:
    """The reported epochs of a candidate's held-out runs, as arrays (every run must be done)."""
    failed = [r for r in records if r.status is not RunStatus.DONE]
    if failed:
        raise SystemExit(f"{label}: {len(failed)} held-out run(s) did not finish: {failed[0].error}")
    epochs = store.epochs_for([r.id for r in records])
    table = [epochs[r.id] for r in records]

    def column(metric: str) -> np.ndarray:
        return np.array([[e.value(metric) for e in rows] for rows in table], dtype=float)

    greedy = np.array([float(rows[-1].value("greedy_return")) for rows in table])
    episodes = column("episodes").mean(axis=0)
    return Curves(label, candidate, episodes, column("mean_return"), column("env_steps"), greedy)


# ---------------------------------------------------------------- numbers


def elapsed(records: Sequence[RunRecord]) -> float:
    """Seconds from the first run's start to the last one's end, as stored (a resumed script
    reports the time its runs took, not the time it took to read them back)."""
    starts = [r.started_at for r in records if r.started_at is not None]
    ends = [r.finished_at for r in records if r.finished_at is not None]
    return max(ends) - min(starts) if starts and ends else math.nan


@dataclass(frozen=True)
class Paired:
    """``a - b`` seed by seed: the mean margin, its noise (``NOISE_SE`` standard errors)."""

    margin: float
    noise: float
    per_seed: tuple[float, ...]

    @property
    def tie(self) -> bool:
        return abs(self.margin) <= self.noise

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray) -> Paired:
        differences = a - b
        se = differences.std(ddof=1) / math.sqrt(len(differences)) if len(differences) > 1 else math.nan
        return cls(float(differences.mean()), NOISE_SE * se, tuple(differences.tolist()))


def steps_reaching(c: Curves, threshold: float) -> list[float]:
    """Per seed, the environment steps taken when mean_return first reached ``threshold`` (NaN: never)."""
    out = []
    for row, steps in zip(c.returns, c.env_steps):
        hits = np.flatnonzero(row >= threshold)
        out.append(float(steps[hits[0]]) if hits.size else math.nan)
    return out


def first_reaching(c: Curves, threshold: float) -> list[float]:
    """Per seed, the episodes played when mean_return first reached ``threshold`` (NaN: never)."""
    out = []
    for row in c.returns:
        hits = np.flatnonzero(row >= threshold)
        out.append(float(c.episodes[hits[0]]) if hits.size else math.nan)
    return out


def reached_words(c: Curves, threshold: float) -> str:
    hits = [e for e in first_reaching(c, threshold) if not math.isnan(e)]
    if not hits:
        return f"no seed reached {threshold:g}"
    median = int(np.median(hits))
    return f"{len(hits)} of {len(c.returns)} seeds reached {threshold:g}, after {median} episodes (median)"


# ---------------------------------------------------------------- pictures


def family_color(name: str) -> str:
    """One colour per family in every figure."""
    return color(FAMILIES.index(name)) if name in FAMILIES else color(len(FAMILIES))


def schedules_figure(all_curves: Sequence[Curves], total_steps: int, agent: str) -> FigureSpec:
    """Mean return against episodes, a line per family (mean over the held-out seeds, band =
    their range), and below it each family's LR against the same episodes."""
    returns, lrs = [], []
    for c in all_curves:
        tint = family_color(c.candidate.schedule_name)
        low, high = c.returns.min(axis=0), c.returns.max(axis=0)
        returns.append(Trace(c.episodes, c.returns.mean(axis=0), c.label, c.label, tint, band=(low, high)))
        steps = np.arange(total_steps)
        epoch_ends = np.arange(1, len(c.episodes) + 1) * (total_steps / len(c.episodes))
        at = np.interp(steps + 1, [0, *epoch_ends], [0, *c.episodes])  # episodes played by each step
        lrs.append(Trace(at, c.candidate.schedule(steps), c.label, c.label, tint, show_legend=False))
    seeds = len(all_curves[0].returns)
    ylabel = f"mean return, last 32 episodes ({seeds} seeds)"
    top = Panel(f"{agent} on CartPole-v1, held-out seeds", "episodes played", ylabel, returns, ylim=(0, 520),
                hline=500.0)  # fmt: skip
    bottom = Panel("The learning rate (Adam)", "episodes played", "learning rate", lrs)
    caption = (
        "Top: mean over the held-out seeds, band from the lowest to the highest seed; 500 is the maximum."
    )
    return FigureSpec("rl_schedules", "Constant, cyclic and one-cycle LR on CartPole", caption, [top, bottom],
                      legend="below", size=(8.0, 8.0), log_toggle=False)  # fmt: skip


def study_points(result: StudyResult, store: Store) -> dict[str, dict[float, list[float]]]:
    """Family -> peak LR -> the final mean return of every seed the study trained there."""
    epochs = store.epochs_for([r.id for r in result.runs])
    points: dict[str, dict[float, list[float]]] = {}
    for run in result.runs:
        rows = epochs.get(run.id) or []
        if run.status is RunStatus.DONE and rows:
            name = result.schedule_names.get(run.config.schedule, "constant")
            peak = peak_lr(run.config.schedule, result.total_steps)
            points.setdefault(name, {}).setdefault(peak, []).append(float(rows[-1].value("mean_return")))
    return points


def study_figure(result: StudyResult, store: Store) -> FigureSpec:
    """The study's final mean return against the peak LR, per family: each seed a dot, the
    line through their means."""
    traces = []
    for name, by_lr in sorted(study_points(result, store).items(), key=lambda item: family_color(item[0])):
        lrs = np.array(sorted(by_lr))
        means = np.array([np.mean(by_lr[lr]) for lr in lrs])
        tint = family_color(name)
        traces.append(Trace(lrs, means, f"{name}: mean over seeds", name, tint, mode="lines"))
        x = np.array([lr for lr in lrs for _ in by_lr[lr]])
        y = np.array([v for lr in lrs for v in by_lr[lr]])
        traces.append(Trace(x, y, f"{name}: one seed", name, tint, mode="markers", marker="circle",
                            marker_size=5, opacity=0.6, show_legend=False))  # fmt: skip
    best = result.recommendation.best
    peak = peak_lr(best.schedule, result.total_steps)
    marks = [VLine(peak, f"recommended: {best.schedule_name} peaking at {peak:.3g}", "#d62728")]
    panel = Panel("The study's runs (seeds 0-2)", "peak learning rate (Adam)", "final mean return", traces,
                  xlog=True, ylim=(0, 520), vlines=marks)  # fmt: skip
    caption = "Dots: one seed's final mean return; line: the mean over the seeds the study trained there."
    return FigureSpec("rl_study", "What the study tried", caption, [panel], legend="below", size=(8.0, 5.0),
                      log_toggle=False)  # fmt: skip


def heldout_figure(recommended: Curves, constant: Curves, baseline: str) -> FigureSpec:
    """Per held-out seed, the recommendation and its ``baseline`` (the best constant, or the
    best other family when the recommendation is a constant) side by side: the training
    return and the greedy policy's return."""
    seeds = np.array(HELDOUT_SEEDS[: len(recommended.final)], dtype=float)
    panels = []
    for title, pick in (("Training: last 32 episodes", "final"), ("Greedy policy: 16 episodes", "greedy")):
        a, b = getattr(constant, pick), getattr(recommended, pick)
        tint = family_color(constant.candidate.schedule_name)
        traces = [
            Trace(seeds - 0.1, a, f"{baseline}: {constant.label}", "baseline", tint, mode="markers",
                  marker="circle", marker_size=9),
            Trace(seeds + 0.1, b, f"recommended: {recommended.label}", "recommended", "#d62728",
                  mode="markers", marker="diamond", marker_size=9),
        ]  # fmt: skip
        low = 10 * math.floor(min(float(np.min(a)), float(np.min(b))) / 10) - 10
        xlim = (seeds[0] - 0.5, seeds[-1] + 0.5)
        panels.append(
            Panel(title, "held-out seed", "mean return", traces, hline=500.0, ylim=(low, 510), xlim=xlim)
        )
    caption = "Each held-out seed trains both configurations: the comparison is paired seed by seed."
    return FigureSpec("rl_heldout", f"Held-out seeds: recommendation vs {baseline}", caption, panels,
                      columns=2, legend="below", size=(10.0, 4.8), log_toggle=False)  # fmt: skip


# ---------------------------------------------------------------- words


def peak_lr(schedule: Schedule, total_steps: int) -> float:
    """The highest LR ``schedule`` reaches over a run of ``total_steps`` optimizer steps."""
    return float(np.max(schedule(np.arange(total_steps))))


def label(candidate: Candidate, total_steps: int) -> str:
    return f"{candidate.schedule_name}, Adam, peak LR {peak_lr(candidate.schedule, total_steps):.3g}"


def study_lines(result: StudyResult, seconds: float) -> list[str]:
    """What the study said, in its own terms (its seeds, its noise, its tie rule)."""
    rec, steps = result.recommendation, result.total_steps
    lines = [
        f"The study ({len(result.runs)} runs of {result.epochs} epochs in {seconds:.0f} s, "
        f"seeds 0-2) recommends **{label(rec.best, steps)}**: `{rec.best.schedule}`, final mean return "
        f"{rec.best.score:.1f} ± {rec.best.sd:.1f} (sd over {rec.best.seeds} seeds)."
    ]
    if rec.tie and rec.runner_up is not None:
        lines.append(
            f"It found it ties with {label(rec.runner_up, steps)} ({rec.runner_up.score:.1f}) within its "
            f"seed noise {rec.noise:.1f}, and took the one its tie rule prefers."
        )
    lines += [
        f"Its words for the LR: {optimum.text}"
        for optimum in result.optima
        if optimum.recommended and optimum.text
    ]
    if rec.best_constant is not None:
        constant = rec.best_constant
        lines.append(f"Its best constant LR: {label(constant, steps)} ({constant.score:.1f}).")
    return lines


def table_lines(all_curves: dict[str, Curves]) -> list[str]:
    """One row per configuration trained on the held-out seeds, with its roles."""
    roles: dict[str, list[str]] = {}
    for role, c in all_curves.items():
        if role != BASELINE:
            roles.setdefault(c.label, []).append(role)
    lines = [
        "| configuration | final mean return, per seed | mean | greedy policy, mean | reached 475 |",
        "|---|---|---|---|---|",
    ]
    for c in {c.label: c for c in all_curves.values()}.values():
        per_seed = ", ".join(f"{v:.0f}" for v in c.final)
        name = f"{c.label} ({', '.join(roles[c.label])})"
        cells = f"{per_seed} | {c.final.mean():.1f} | {c.greedy.mean():.1f} | {reached_words(c, SOLVED)}"
        lines.append(f"| {name} | {cells} |")
    return lines


def paired_words(paired: Paired) -> str:
    """A paired margin in words: a tie when it is within the noise."""
    if paired.tie:
        return f"a tie: the margin {paired.margin:+.1f} is within the paired seed noise {paired.noise:.1f}"
    better = "better" if paired.margin > 0 else "worse"
    noise = f"the paired seed noise {paired.noise:.1f}"
    return f"the recommendation is {better} by {paired.margin:+.1f}, beyond {noise}"


def comparison_lines(recommended: Curves, constant: Curves, baseline: str) -> list[str]:
    """The recommendation against the best constant, paired seed by seed, on the objective the
    study ranked by and on the greedy policy's return; a tie said as one."""
    paired = Paired.of(recommended.final, constant.final)
    greedy = Paired.of(recommended.greedy, constant.greedy)
    differences = ", ".join(f"{d:+.0f}" for d in paired.per_seed)
    greedy_differences = ", ".join(f"{d:+.0f}" for d in greedy.per_seed)
    return [
        f"Recommendation minus {baseline}, seed by seed, in the final mean return the study ranks by: "
        f"{differences}; {paired_words(paired)} ({NOISE_SE:g} standard errors of the "
        f"{len(paired.per_seed)} paired differences). In the greedy policy's return: {greedy_differences}; "
        f"{paired_words(greedy)}.",
    ]


def reference_lines(recommended: Curves) -> list[str]:
    """How close the recommendation comes to rl-baselines3-zoo's tuned agents, and at what cost."""
    episodes, env_steps = recommended.episodes[-1], recommended.env_steps[:, -1].mean()
    perfect = int(np.sum(recommended.greedy >= 500.0))
    at_500 = [s for s in steps_reaching(recommended, 500.0) if not math.isnan(s)]
    when = f", {np.median(at_500):,.0f} environment steps" if at_500 else ""
    return [
        f"Against the published reference (500, evaluated greedily, after 100,000 environment steps for "
        f"PPO and 50,000 for DQN): the recommended configuration plays {episodes:.0f} episodes, "
        f"{env_steps:,.0f} environment steps on average, per run ({env_steps / 100_000:.1f} times PPO's "
        f"budget, {env_steps / 50_000:.1f} times DQN's). Its greedy policy scores "
        f"{recommended.greedy.mean():.1f} on average over the 5 held-out seeds (500 on {perfect} of them); "
        f"during training, {reached_words(recommended, 500.0)}{when}.",
    ]


def results_markdown(result: StudyResult, all_curves: dict[str, Curves], seconds: dict[str, float]) -> str:
    """The section of rl.md this script owns: what the study said, and what held-out seeds said."""
    seeds = ", ".join(map(str, HELDOUT_SEEDS))
    lines = [
        *study_lines(result, seconds["study"]),
        "",
        f"Held-out seeds {seeds} ({seconds['heldout']:.0f} s):",
        "",
    ]
    lines += [*table_lines(all_curves), ""]
    lines += comparison_lines(all_curves["recommended"], all_curves[BASELINE], baseline_name(all_curves))
    lines += ["", *reference_lines(all_curves["recommended"])]
    return "\n".join(lines)


def write_section(doc: Path, text: str, section: str) -> None:
    """Replace the text between the markers ``<!-- SECTION:begin -->`` and ``<!-- SECTION:end -->``
    of ``doc`` (a new page with just them if there is none)."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    old = doc.read_text() if doc.exists() else f"# CartPole\n\n{begin}\n{end}\n"
    if begin not in old or end not in old:
        raise SystemExit(f"{doc} has no {begin} ... {end} markers to write between")
    head, rest = old.split(begin, 1)
    tail = rest.split(end, 1)[1]
    write_text(doc, f"{head}{begin}\n{text}\n{end}{tail}")


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", default=TRAIN, help="the trainable, FILE.py:function")
    parser.add_argument("--db", default="lrlab-runs/cartpole.db", help="the run store")
    parser.add_argument("--docs", default=str(HERE.parent / "docs"), help="where rl.md and img/ are")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="replace a stored study of another function")
    parser.add_argument("--images", default="rl", help="the figures' file names start with this")
    parser.add_argument("--section", default="cartpole-heldout", help="the markers of rl.md to write between")
    args = parser.parse_args(argv)
    docs = Path(args.docs)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    store = Store(Path(args.db))
    try:
        result = study(store, args.train, args.jobs, Path(args.db).parent / "cartpole-study", args.fresh)
        seconds = {"study": elapsed(result.runs)}
        rec = result.recommendation
        roles = {"recommended": rec.best, **baseline_role(result)}
        roles.update({f"best {name}": c for name, c in best_per_family(result).items()})
        used = {r.config.seed for r in result.runs}
        if used & set(HELDOUT_SEEDS):
            raise SystemExit(f"the study used seeds {sorted(used)}: not held out")
        chosen = {label(c, result.total_steps): c for c in roles.values()}  # one entry per configuration
        records = train_heldout(store, args.train, chosen, HELDOUT_SEEDS, args.jobs)
        seconds["heldout"] = elapsed([r for runs in records.values() for r in runs])
        by_label = {name: curves(store, name, c, records[name]) for name, c in chosen.items()}
        all_curves = {role: by_label[label(c, result.total_steps)] for role, c in roles.items()}
        img = docs / "img"
        img.mkdir(parents=True, exist_ok=True)
        families = [all_curves[f"best {name}"] for name in FAMILIES if f"best {name}" in all_curves]
        agent = AGENTS.get(args.train.rsplit(":", 1)[-1], args.train.rsplit(":", 1)[-1])
        save_figure(
            schedules_figure(families, result.total_steps, agent), img / f"{args.images}_schedules.png"
        )
        save_figure(study_figure(result, store), img / f"{args.images}_study.png")
        paired = heldout_figure(all_curves["recommended"], all_curves[BASELINE], baseline_name(all_curves))
        save_figure(paired, img / f"{args.images}_heldout.png")
        text = results_markdown(result, all_curves, seconds)
        write_section(docs / "rl.md", text, args.section)
        print(text)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
