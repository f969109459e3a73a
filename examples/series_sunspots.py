"""Sunspots: the study's recommended forecaster against classical forecasts, on one split.

    python examples/series_sunspots.py --task sunspots-lstm --db lrlab-runs/series.db \
        --out docs/img/series_sunspots_lstm.png

1. ``lrlab study`` of the built-in task (small budget, its default optimizers sgd, sgdm and
   adam, its default options: window 24, horizon 1, 32 hidden units); resumable from the store.
2. The recommended configuration trained again with ``HELD_OUT_SEEDS`` (seeds the study never
   saw), each run recorded in the store; its one-year-ahead forecasts of the validation span.
3. Classical forecasts of the very same validation targets (1947-2008), each from the years
   before the year it forecasts: persistence (last year's value), seasonal naive (the value
   one solar cycle, 11 years, earlier) and an ARIMA(p, 0, q) with a constant whose order is
   chosen by AIC on the training span only and whose parameters are fitted there (the
   validation years only feed its one-step forecasts, never its fit).
4. A markdown table of every forecast's validation MSE (standardised, the task's val_loss)
   and RMSE in sunspot numbers, and a figure of the forecasts against the actual series.

The study's seeds (0, 1, 2) chose the configuration; the held-out seeds measure it, so the
network's number is not the best of the draws that picked it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np

HELD_OUT_SEEDS = (100, 101, 102, 103, 104)
SEASON = 11  # years: the mean length of a solar cycle
ARIMA_P = range(1, 10)
ARIMA_Q = range(3)


def persistence(values: np.ndarray, start: int) -> np.ndarray:
    """Forecasts of ``values[start:]``, each the year before it."""
    return values[start - 1 : -1]


def seasonal_naive(values: np.ndarray, start: int, season: int = SEASON) -> np.ndarray:
    """Forecasts of ``values[start:]``, each the value ``season`` years before it."""
    return values[start - season : len(values) - season]


def arima_forecasts(values: np.ndarray, start: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One-step forecasts of ``values[start:]`` by the ARIMA(p, 0, q) of lowest AIC fitted on
    ``values[:start]``; the fitted parameters are applied to the whole series unchanged."""
    from statsmodels.tsa.arima.model import ARIMA

    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the poorer orders
        for p in ARIMA_P:
            for q in ARIMA_Q:
                fitted = ARIMA(values[:start], order=(p, 0, q), trend="c").fit()
                if best is None or fitted.aic < best[0].aic:
                    best = (fitted, (p, 0, q))
        fitted, order = best
        applied = fitted.apply(values)  # same parameters, the whole series as data
    return np.asarray(applied.predict(start=start, end=len(values) - 1)), order


def study_of(task: str, db: Path, jobs: int):
    """The study of ``task`` (resumed from ``db`` when it is there)."""
    from lrlab.store.sqlite import Store
    from lrlab.study import run_study

    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db)
    return run_study(task, store, budget="small", jobs=jobs, device="cpu"), store


def held_out(result, store, task_ref: str) -> tuple[list[float], np.ndarray]:
    """The recommended configuration trained with each held-out seed: validation MSE per seed
    and the forecasts (seeds x validation years, standardised)."""
    import torch

    from lrlab.sweeps import RunPlan
    from lrlab.training.loop import train_run
    from lrlab.training.tasks import get_task

    best = result.recommendation.best
    config = store.run(best.run_ids[0]).config
    task = get_task(task_ref, **dict(config.task_options))
    built: list[torch.nn.Module] = []
    factory = task.model_factory
    task.model_factory = lambda: built.append(factory()) or built[-1]  # keep the model the loop trains
    losses, forecasts = [], []
    inputs = task.val_data.inputs
    for seed in HELD_OUT_SEEDS:
        seeded = dataclasses.replace(config, seed=seed)
        plan = RunPlan.of(f"{result.name}-held-out", seeded)
        built.clear()
        # without an owner the run is trained (again) whatever the store holds: its model is wanted
        record = train_run(seeded, store, plan.id, task=task, sweep=f"{result.name}-held-out")
        epochs = store.epochs_for([record.id])[record.id]
        losses.append(float(epochs[-1].value("val_loss")))
        with torch.no_grad():
            forecasts.append(built[-1].eval()(inputs)[:, 0].double().numpy())
    return losses, np.stack(forecasts)


def year_noise(ours: np.ndarray, theirs: np.ndarray, actual: np.ndarray, std: float, *, block: int = SEASON,
               n_boot: int = 4000, seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """The mean over the validation years of (our squared error - their squared error), in
    standardised units, and its 90% interval by a circular block bootstrap over the years (blocks
    of one solar cycle, so that neighbouring, correlated years are resampled together): how much
    the comparison owes to which 62 years happen to be validated on, which seeds cannot show."""
    diff = ((np.asarray(ours) - actual) ** 2 - (np.asarray(theirs) - actual) ** 2) / std**2
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(diff), size=(n_boot, -(-len(diff) // block)))
    picks = ((starts[:, :, None] + np.arange(block)) % len(diff)).reshape(n_boot, -1)[:, : len(diff)]
    means = diff[picks].mean(axis=1)
    low, high = np.quantile(means, [0.05, 0.95])
    return float(diff.mean()), float(low), float(high)


def mse(forecast: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean((np.asarray(forecast) - np.asarray(actual)) ** 2))


def table(rows: list[tuple[str, float, float, str]], std: float) -> str:
    lines = ["| forecast | val MSE (standardised) | RMSE (sunspot number) | note |", "|---|---|---|---|"]
    for name, value, sd, note in rows:
        spread = f" ± {sd:.3f}" if not math.isnan(sd) else ""
        rmse = math.sqrt(value) * std
        lines.append(f"| {name} | {value:.3f}{spread} | {rmse:.1f} | {note} |")
    return "\n".join(lines)


def figure(path: Path, years: np.ndarray, actual: np.ndarray, lines: dict[str, np.ndarray],
           band: tuple[np.ndarray, np.ndarray], title: str) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrlab.files import atomic_path

    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    ax.plot(years, actual, color="black", lw=2.2, label="actual")
    styles = [("tab:blue", "-"), ("tab:orange", "--"), ("tab:green", ":")]
    for (name, values), (color, style) in zip(lines.items(), styles):
        ax.plot(years, values, color=color, ls=style, lw=1.8, label=name)
    ax.fill_between(years, band[0], band[1], color="tab:blue", alpha=0.2, lw=0, label="network, seed range")
    ax.set_xlabel("year (validation span: never trained on)")
    ax.set_ylabel("yearly sunspot number")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", ncol=3, fontsize=8, frameon=False)
    ax.set_ylim(bottom=min(0.0, float(np.min(band[0]))), top=1.25 * float(np.max(actual)))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sunspots-lstm", choices=["sunspots-lstm", "sunspots-gru"])
    parser.add_argument("--db", type=Path, default=Path("lrlab-runs/series.db"))
    parser.add_argument("--out", type=Path, default=Path("series_sunspots.png"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    from lrlab.training.tasks.series import sunspots_split

    split = sunspots_split()  # the task's defaults: window 24, horizon 1
    start, values, std = split.train_end, split.values, split.std
    actual = values[start:]
    result, store = study_of(args.task, args.db, args.jobs)
    best = result.recommendation
    losses, forecasts = held_out(result, store, args.task)
    network = split.restore(forecasts)
    arima, order = arima_forecasts(values, start)
    naive, seasonal = persistence(values, start), seasonal_naive(values, start)

    net_mse = [mse(f, actual) / std**2 for f in network]
    assert np.allclose(net_mse, losses, rtol=1e-4), (net_mse, losses)  # the forecasts are the stored runs'
    label = f"{best.best.optimizer} + {best.best.schedule_name} (peak lr {best.best.lr:.3g})"
    rows = [
        (f"{args.task}: {label}", float(np.mean(losses)), float(np.std(losses, ddof=1)),
         f"mean ± sd over held-out seeds {', '.join(map(str, HELD_OUT_SEEDS))}"),
        (f"ARIMA{order} + constant", mse(arima, actual) / std**2, math.nan, "order by AIC on 1700-1946"),
        ("seasonal naive (11 years)", mse(seasonal, actual) / std**2, math.nan, "value one cycle earlier"),
        ("persistence", mse(naive, actual) / std**2, math.nan, "last year's value"),
    ]  # fmt: skip
    print(f"study {result.name}: {len(result.runs)} runs, {result.epochs} epochs each; recommended {label}")
    print(f"study score {best.best.score:.4f} ± {best.best.sd:.4f} over its {best.best.seeds} seeds")
    print(f"held-out val MSE per seed: {', '.join(f'{x:.4f}' for x in losses)}")
    print(table(rows, std))
    gap = float(np.mean(losses)) - rows[1][1]
    se = float(np.std(losses, ddof=1)) / math.sqrt(len(losses))
    print(f"network - ARIMA: {gap:+.4f} (standard error over seeds {se:.4f}, {abs(gap) / se:.1f} se)")
    mean, low, high = year_noise(network.mean(axis=0), arima, actual, std)
    print(f"network (mean forecast of the seeds) - ARIMA over the validation years: {mean:+.4f}, "
          f"90% block-bootstrap interval {low:+.4f} to {high:+.4f}")  # fmt: skip
    years = split.years[start:].astype(int)
    figure(args.out, years, actual,
           {f"{args.task} ({best.best.schedule_name}), mean of {len(losses)} seeds": network.mean(axis=0),
            f"ARIMA{order}": arima, "seasonal naive (11 y)": seasonal},
           (network.min(axis=0), network.max(axis=0)),
           "one-year-ahead forecasts of the validation span, each from the years before it")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
