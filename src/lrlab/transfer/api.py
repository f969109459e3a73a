"""``lrlab.transfer(factory, axis="width", proxies=[32, 64, 128], target=1024, ...)``: the optimal
peak LR predicted at a scale too large to sweep, from small proxies, with an interval.

Each proxy is trained at a grid of LRs (half-octave steps around a starting LR: the range
test of the smallest proxy, then the trend of the optima found so far) with every seed, and
the grid is extended outward until its optimum is bracketed (``lrlab.core.bracket``). The
optima are fitted by a power law in the scale (``log LR* = a + slope * log scale``), whose
interval carries each proxy's own. Every run is stored in sweeps named after the transfer,
so a re-run trains only what is missing.

Example::

    import lrlab
    from lrlab.training.tasks.digits import digits_mlp
    result = lrlab.transfer(digits_mlp, axis="hidden", proxies=[16, 32, 64], target=512, epochs=4)
    print(result)                      # the prediction in words
    result.lr, result.interval         # 80 % interval
    result.report("transfer.html")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrlab.core.bracket import Optimum, bracket, fit_power_law, mean_losses
from lrlab.formatting import round_sig
from lrlab.store.location import DEFAULT_DB
from lrlab.transfer.checks import RUN_AXES, SCHEDULES, TransferError, check_axis, check_numbers, check_proxies
from lrlab.transfer.proxies import Proxy, ProxyTrainer, build_proxy, task_of
from lrlab.transfer.result import TransferResult

if TYPE_CHECKING:
    from lrlab.store.sqlite import Store

__all__ = ["PARAMETRIZATIONS", "TransferEvent", "transfer"]

PARAMETRIZATIONS = ("standard", "mup")
GRID_FACTOR = 2**0.5  # half-octave steps around the trend of the optima found so far
FIRST_FACTOR = 2.0  # octave steps for the first proxy: a range test's LR is a rough start
FIRST_SHIFT = 2.0  # the first grid centred above the range test's LR: the optimum of a run lies
# above the steepest descent of a short range test (the study's best LR sat at x3 in most families)
GRID_POINTS = 5


@dataclass(frozen=True)
class TransferEvent:
    """A phase of a transfer for a ``progress`` callback: ``"plan"`` (``total`` proxies),
    ``"range-test"``, ``"coord"`` (μP's coordinate check), ``"proxy"`` (``detail`` names it; ``index``
    of ``total``), ``"fit"``."""

    phase: str
    detail: str
    index: int
    total: int


def transfer(
    factory: Callable[..., Any],
    axis: str = "width",
    proxies: Sequence[float] = (32, 64, 128),
    target: float = 1024,
    optimizer: str = "adam",
    schedule: str = "cosine",
    seeds: int = 2,
    parametrization: str = "standard",
    store: str | Path | Store | None = None,
    epochs: int | None = None,
    jobs: int = 1,
    progress: Callable[[Any], None] | None = None,
    *,
    name: str | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    options: Mapping[str, Any] | None = None,
    max_extra: int = 4,
    level: float = 0.8,
    device: str = "cpu",
    fresh: bool = False,
    vectorize: bool = False,
) -> TransferResult:
    """Predict the optimal peak LR of ``optimizer`` with ``schedule`` at ``axis = target``.

    ``factory(**{axis: value}, **options)`` returns a :class:`~lrlab.training.tasks.Task`
    or ``lrlab.study``'s model function form (``(model_fn, train, val)`` or a dict of its
    keywords). ``axis`` is any keyword of the factory, or ``"steps"`` (the run length, in
    epochs) or ``"batch_size"``, for which the factory is called without an argument.
    ``proxies`` (at least three) are trained with ``seeds`` seeds each for ``epochs``
    (default: the task's), at half-octave LR steps around ``lr`` (default: a range test of
    the smallest proxy, whose own grid is in octave steps), extended by up to ``max_extra``
    LRs until bracketed. ``schedule``
    is one of :data:`~lrlab.transfer.checks.SCHEDULES` or a spec with ``{lr}`` and
    ``{total_steps}``. ``parametrization="mup"`` trains the proxies in μP
    (:func:`lrlab.transfer.mup.mup_setup`). Runs go to ``store`` (default: the lrlab store)
    as sweeps ``{name}-{axis}{value}``; ``fresh`` deletes them first. ``vectorize`` trains a
    grid's LRs stacked in one process (``lrlab.training.vectorized``: same batches, faster on
    small models).

    Raises :class:`~lrlab.transfer.checks.TransferError` (one line) for fewer than three
    proxies, a target inside their range, an axis the factory does not take, optima that
    could not be bracketed, or a fit through diverged runs; what trained stays stored.
    """
    numbers = {"seeds": seeds, "jobs": jobs, "epochs": epochs, "batch_size": batch_size, "max_extra": max_extra,
               "lr": lr, "level": level}  # fmt: skip
    values, goal = _checked(factory, axis, proxies, target, optimizer, schedule, parametrization, numbers)
    optimizer = _optimizer(optimizer)
    name = name or _default_name(factory, axis)
    report = progress or (lambda _event: None)
    the_store, owned = _open(store)
    try:
        if fresh:
            _forget(the_store, name)
        call = _bound(factory, options)
        made = [_proxy(call, axis, v, name, epochs, batch_size, parametrization, values[0], optimizer)
                for v in values]  # fmt: skip
        report(TransferEvent("plan", f"{len(made)} proxies of {axis}", 0, len(made)))
        start = lr if lr is not None else _starting_lr(the_store, name, made[0], optimizer, device, report)
        if parametrization == "mup":
            _coordinate_check(call, axis, values, goal, start, optimizer, report)
        execution = {"jobs": jobs, "device": device, "vectorize": vectorize}
        optima = _optima(made, the_store, optimizer, schedule, tuple(range(seeds)), start, execution, max_extra,
                         level, report)  # fmt: skip
        _refuse_unusable(axis, made, optima)
        report(TransferEvent("fit", f"{axis} {goal:g}", len(made), len(made)))
        law = fit_power_law([p.value for p in made], optima, goal, level=level)
        path = Path(the_store.path)
    finally:
        if owned:
            the_store.close()
    return TransferResult(name=name, axis=axis, target=goal, optimizer=optimizer, schedule=schedule,
                          seeds=seeds, parametrization=parametrization, law=law, scales=tuple(values),
                          proxies=tuple(optima), target_steps=_target_steps(axis, goal, made),
                          proxy_steps=tuple(p.total_steps for p in made), store_path=path,
                          sweeps=tuple(p.sweep for p in made))  # fmt: skip


def _checked(
    factory: Any,
    axis: str,
    proxies: Any,
    target: Any,
    optimizer: Any,
    schedule: Any,
    parametrization: Any,
    numbers: dict[str, Any],
) -> tuple[tuple[float, ...], float]:
    check_axis(factory, axis)
    values, goal = check_proxies(proxies, target, axis)
    check_numbers(**numbers)
    if parametrization not in PARAMETRIZATIONS:
        raise TransferError(
            f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {parametrization!r}"
        )
    if parametrization == "mup" and axis in RUN_AXES:
        raise TransferError(
            f"parametrization 'mup' scales a model's width, not {axis!r}: use a keyword of the factory"
        )
    if not isinstance(schedule, str) or (schedule not in SCHEDULES and "{lr}" not in schedule):
        raise TransferError(
            f"schedule must be one of {', '.join(SCHEDULES)} or a spec with {{lr}}, got {schedule!r}"
        )
    if not isinstance(optimizer, str) or not optimizer.strip():
        raise TransferError(f"optimizer must be an optimizer name or spec, got {optimizer!r}")
    return values, goal


def _optimizer(spec: str) -> str:
    from lrlab.optim.grammar import parse_optimizer, resolve_optimizer

    try:
        resolved = resolve_optimizer(spec)
        parse_optimizer(resolved)
    except ValueError as exc:
        raise TransferError(str(exc).splitlines()[0]) from None
    return resolved


def _default_name(factory: Callable[..., Any], axis: str) -> str:
    base = getattr(factory, "__name__", "") or "model"
    base = "model" if base.startswith("<") else base.replace("_", "-")
    return f"transfer-{base}-{axis.replace('_', '-')}"


def _open(store: str | Path | Store | None) -> tuple[Store, bool]:
    from lrlab.store.sqlite import Store

    if isinstance(store, Store):
        return store, False
    if store is not None and not isinstance(store, str | Path):
        raise TransferError(f"store must be a path (str or Path) or a Store, got {type(store).__name__}")
    path = Path(DEFAULT_DB if store is None else store)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Store(path), True


def _forget(store: Store, name: str) -> None:
    """``fresh``: the transfer's proxy sweeps and range test leave the store."""
    for sweep in store.sweeps():
        if sweep.startswith(f"{name}-"):
            store.delete_sweep(sweep)


def _bound(factory: Callable[..., Any], options: Mapping[str, Any] | None) -> Callable[..., Any]:
    """``factory`` with the task's ``options`` given on every call (itself without options)."""
    if not options:
        return factory

    def call(**kwargs: Any) -> Any:
        return factory(**dict(options), **kwargs)

    call.__name__ = getattr(factory, "__name__", "model")  # type: ignore[attr-defined]
    return call


def _as_tasks(call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` returning a ``Task`` whatever form it returns: μP and its coordinate check
    build the model at other widths too, always as a task."""

    def tasks(**kwargs: Any) -> Any:
        return task_of(call(**kwargs), call)

    return tasks


def _proxy(
    call: Callable[..., Any],
    axis: str,
    value: float,
    name: str,
    epochs: int | None,
    batch_size: int | None,
    parametrization: str,
    base: float,
    optimizer: str,
) -> Proxy:
    proxy = build_proxy(call, axis, value, name=name, epochs=epochs, batch_size=batch_size)
    if parametrization != "mup":
        return proxy
    from lrlab.transfer.mup import mup_setup

    try:
        setup = mup_setup(_as_tasks(call), axis, int(value), base=int(base), optimizer=optimizer)
    except ValueError as exc:
        raise TransferError(f"μP at {axis} {value:g}: {str(exc).splitlines()[0]}") from None
    task = setup.task if setup.task is not None else proxy.task
    return replace(proxy, task=task, lr_mult=dict(setup.lr_mult))


def _coordinate_check(
    call: Callable[..., Any],
    axis: str,
    values: tuple[float, ...],
    goal: float,
    lr: float,
    optimizer: str,
    report: Any,
) -> None:
    """μP's coordinate check over the proxies and the target (a few steps each, before any
    proxy trains): a layer whose activations' updates grow or shrink with width is a
    ``TransferError`` naming it, not octaves of drift found after the runs."""
    from lrlab.transfer.coord import coord_check

    report(TransferEvent("coord", f"{axis} {', '.join(f'{v:g}' for v in (*values, goal))}", 0, 1))
    widths = sorted({int(v) for v in (*values, goal)})
    try:
        coord_check(_as_tasks(call), axis, widths, lr=lr, optimizer=optimizer, base=int(values[0])).check()
    except ValueError as exc:
        raise TransferError(f"μP's coordinate check failed: {str(exc).splitlines()[0]}") from None


def _starting_lr(store: Store, name: str, proxy: Proxy, optimizer: str, device: str, report: Any) -> float:
    """The range test's LR on the smallest proxy (stored with the transfer; reused on a re-run)."""
    from lrlab.study.range_tests import task_range_test
    from lrlab.training.tasks._base import task_fingerprint

    if not getattr(proxy.task, "range_test", True):  # a trainable: the middle of its declared LR range
        low, high = getattr(proxy.task, "lr_range", None) or (1e-4, 1e-1)
        return round_sig(math.sqrt(low * high))
    fingerprint = task_fingerprint(proxy.task)
    for record in store.finder_results(sweep=name):
        same = record.optimizer == optimizer and record.config.get("fingerprint") == fingerprint
        if same and math.isfinite(record.lr) and record.lr > 0:
            return float(record.lr)
    report(TransferEvent("range-test", f"{optimizer} on {proxy.sweep}", 0, 0))
    result, record = task_range_test(proxy.task, proxy.task.name, optimizer, batch_size=proxy.batch_size,
                                     device=device, sweep=name, num_iter=100)  # fmt: skip
    if not (math.isfinite(result.lr) and result.lr > 0):
        raise TransferError(f"the range test on {proxy.sweep} could not suggest a starting LR ({result.reason}); "
                            "give one (lr=... / --lr)")  # fmt: skip
    store.save_finder_result(replace(record, config={**record.config, "fingerprint": fingerprint}))
    return float(result.lr)


def _optima(
    made: Sequence[Proxy],
    store: Store,
    optimizer: str,
    schedule: str,
    seeds: tuple[int, ...],
    start: float,
    execution: dict[str, Any],
    max_extra: int,
    level: float,
    report: Any,
) -> list[Optimum]:
    """Each proxy's bracketed optimum, the grid of each centred on the trend of those before."""
    optima: list[Optimum] = []
    for index, proxy in enumerate(made):
        centre = _centre(start * FIRST_SHIFT, [p.value for p in made[:index]], optima, proxy.value)
        step = FIRST_FACTOR if index == 0 else GRID_FACTOR
        grid = [round_sig(centre * step ** (k - GRID_POINTS // 2)) for k in range(GRID_POINTS)]
        report(TransferEvent("proxy", proxy.sweep, index, len(made)))
        described = {"name": proxy.sweep, "task": proxy.task.name, "optimizer": optimizer, "schedule": schedule,
                     "seeds": list(seeds), "epochs": proxy.epochs, "batch_size": proxy.batch_size,
                     "task_options": dict(proxy.task_options)}  # fmt: skip
        trainer = ProxyTrainer(
            proxy, store, optimizer, schedule, seeds, dict(execution, progress=report), described
        )
        optima.append(bracket(trainer.evaluate, grid, factor=step, max_extra=max_extra, level=level))
    return optima


def _centre(start: float, scales: Sequence[float], optima: Sequence[Optimum], value: float) -> float:
    """Where the next proxy's grid is centred: the starting LR for the first; then the last
    optimum moved along the trend of the optima so far (a straight line in log-log)."""
    usable = [(s, o.lr) for s, o in zip(scales, optima, strict=True) if math.isfinite(o.lr) and o.lr > 0]
    if not usable:
        return start
    if len(usable) == 1:
        return usable[0][1]
    (s0, l0), (s1, l1) = usable[-2], usable[-1]
    slope = math.log(l1 / l0) / math.log(s1 / s0)
    slope = max(-1.5, min(1.5, slope))  # two noisy points: keep the step sane
    return l1 * (value / s1) ** slope


def _refuse_unusable(axis: str, made: Sequence[Proxy], optima: Sequence[Optimum]) -> None:
    """``TransferError`` when an optimum is not bracketed, or sits on diverged runs."""
    diverged = [p for p, o in zip(made, optima, strict=True) if not math.isfinite(o.lr) or _best_diverged(o)]
    if diverged:
        names = ", ".join(f"{axis} {p.value:g}" for p in diverged)
        raise TransferError(
            f"the optimum of {names} sits on diverged runs (every LR, or a seed at the best LR, diverged): a slope "
            "fitted through them would not hold; give a smaller starting LR (lr=... / --lr) or more epochs"
        )
    loose = [(p, o) for p, o in zip(made, optima, strict=True) if not o.bracketed]
    if loose:
        names = ", ".join(
            f"{axis} {p.value:g} (best {o.best_lr:.3g}, at the {o.edge or 'edge'})" for p, o in loose
        )
        raise TransferError(
            f"the optimum could not be bracketed for {names}: widen the grid (max_extra=... / --max-extra) "
            "or start nearer (lr=... / --lr)"
        )


def _best_diverged(optimum: Optimum) -> bool:
    means = mean_losses(optimum.losses)
    index = list(optimum.lrs).index(optimum.best_lr) if optimum.best_lr in optimum.lrs else None
    return index is None or not math.isfinite(float(means[index]))


def _target_steps(axis: str, goal: float, made: Sequence[Proxy]) -> int:
    """The target run's optimizer steps: the largest proxy's, at the target's length or batch size."""
    from lrlab.training.tasks import batch_count

    last = made[-1]
    if axis == "steps":
        return int(goal) * last.steps_per_epoch
    if axis == "batch_size":
        return last.epochs * batch_count(len(last.task.train_data), int(goal))  # type: ignore[arg-type]
    return last.total_steps
