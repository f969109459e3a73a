"""The learning-rate range test (Smith 2015/2017): the torch runner behind ``lrlab.find_lr``.

The LR rises from ``start_lr`` to ``end_lr`` over ``num_iter`` optimizer steps while the
loss is recorded; the suggestion rules of ``lrlab.finder.suggest`` read the curve. The test
trains the caller's own model and optimizer and puts every bit of their state back
afterwards (``lrlab.finder._state``), whether it finishes, diverges, raises or is
interrupted.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lrlab.core.records import FinderRecord
from lrlab.finder import suggest
from lrlab.finder._state import TrainingState, capture
from lrlab.finder.batches import BatchReader, check_reiterable
from lrlab.finder.confirm import confirm_lrs
from lrlab.finder.halving import halving_search
from lrlab.finder.result import FinderResult
from lrlab.finder.stepper import Stepper, check_count
from lrlab.torch_utils import cycle

__all__ = ["MAX_NUM_ITER", "MAX_REPEATS", "find_lr", "lr_at"]

Progress = Callable[[int, int, float, float], None]

# The most optimizer steps a range test takes (Smith's tests take a few hundred), and the most
# repeats: beyond them a test would run for days; a bound says so at once.
MAX_NUM_ITER = 100_000
MAX_REPEATS = 100

# After this many non-finite losses in a row the weights themselves are broken: stop.
_MAX_NONFINITE_IN_A_ROW = 5


def lr_at(iteration: int, num_iter: int, start_lr: float, end_lr: float, mode: str = "exp") -> float:
    """The LR of ``iteration`` (0-based): geometric (``exp``) or arithmetic (``linear``)
    steps from start_lr (first iteration) to end_lr (last).

    >>> [round(lr_at(i, 5, 1e-4, 1.0), 6) for i in range(5)]
    [0.0001, 0.001, 0.01, 0.1, 1.0]
    >>> [lr_at(i, 3, 1.0, 3.0, "linear") for i in range(3)]
    [1.0, 2.0, 3.0]
    """
    fraction = iteration / (num_iter - 1)
    if mode == "exp":
        return start_lr * (end_lr / start_lr) ** fraction
    return start_lr + (end_lr - start_lr) * fraction


@dataclass(frozen=True)
class _Ramp:
    """A range test's LR ramp and its stopping rule: ``num_iter`` LRs from ``start_lr`` to
    ``end_lr`` (``mode``: geometric ``exp`` or arithmetic ``linear``); the loss smoothed by
    an EMA of weight ``smooth``; a stop once the smoothed loss exceeds ``diverge`` times its
    best. A bad value raises ``ValueError`` naming it."""

    start_lr: float
    end_lr: float
    num_iter: int
    mode: str
    smooth: float
    diverge: float

    def __post_init__(self) -> None:
        for name in ("start_lr", "end_lr", "smooth", "diverge"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if not (math.isfinite(self.start_lr) and self.start_lr > 0):
            raise ValueError(f"start_lr must be a finite number > 0, got {self.start_lr}")
        if not (math.isfinite(self.end_lr) and self.end_lr > self.start_lr):
            raise ValueError(f"end_lr must be finite and > start_lr ({self.start_lr}), got {self.end_lr}")
        check_count("num_iter", self.num_iter, 2, "optimizer steps of the test", maximum=MAX_NUM_ITER)
        if self.mode not in ("exp", "linear"):
            raise ValueError(f"mode must be 'exp' or 'linear', got {self.mode!r}")
        if not 0.0 <= self.smooth < 1.0:
            raise ValueError(f"smooth must be in [0, 1), got {self.smooth}")
        if not (math.isfinite(self.diverge) and self.diverge > 1.0):
            raise ValueError(f"diverge must be a finite number > 1, got {self.diverge}")

    def lr(self, iteration: int) -> float:
        return lr_at(iteration, self.num_iter, self.start_lr, self.end_lr, self.mode)


@dataclass(frozen=True)
class _Trainee:
    """What the searches beside the range test (halving, confirmation) train: the caller's
    model and optimizer on its loaders, batches read as the range test reads them."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[Any, Any], torch.Tensor] | None
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    reader: BatchReader
    accumulation_steps: int
    amp: bool


# Losses that measure a distance between outputs and real-valued targets.
_REGRESSION_MODULES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss, torch.nn.HuberLoss)
_REGRESSION_FUNCTIONS = (
    torch.nn.functional.mse_loss,
    torch.nn.functional.l1_loss,
    torch.nn.functional.smooth_l1_loss,
    torch.nn.functional.huber_loss,
)


def is_regression_loss(loss_fn: Any) -> bool:
    """Whether ``loss_fn`` is a regression loss: ``nn.MSELoss``, ``nn.L1Loss``,
    ``nn.SmoothL1Loss``, ``nn.HuberLoss`` (instances), the matching functions of
    ``torch.nn.functional`` (also inside ``functools.partial``), or the ``loss_fn`` method of
    a task whose ``kind`` is ``"regression"`` (an ``lrlab`` task). Anything else, a lambda
    around one of them included, is not recognised: pass ``find_lr(..., regression=True)``.

    >>> is_regression_loss(torch.nn.MSELoss()), is_regression_loss(torch.nn.functional.cross_entropy)
    (True, False)
    """
    while isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    if isinstance(loss_fn, _REGRESSION_MODULES) or any(loss_fn is f for f in _REGRESSION_FUNCTIONS):
        return True
    owner = getattr(loss_fn, "__self__", None)
    return getattr(loss_fn, "__name__", None) == "loss_fn" and getattr(owner, "kind", None) == "regression"


def is_sgd_family(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` takes plain gradient steps (``SGD``, with or without momentum
    or Nesterov, and ``ASGD``), as opposed to per-weight adaptive ones."""
    return isinstance(optimizer, (torch.optim.SGD, torch.optim.ASGD))


def _recommend(
    suggestions: dict[str, float], diverged_early: bool, sgd: bool, regression: bool = False
) -> tuple[str | None, float, str]:
    default, reason = suggest.default_rule(sgd, regression)
    order = [default, *[name for name in suggest.RULES if name != default]]
    for name in order:
        if name in suggestions:
            why = (
                reason
                if name == default
                else (f"fallback: the default rule '{default}' could not decide on this curve")
            )
            return name, suggestions[name], f"{name} ({suggest.RULE_DESCRIPTIONS[name]}): {why}"
    detail = "the loss diverged almost at once; lower start_lr" if diverged_early else "too few finite losses"
    return None, math.nan, f"no rule could decide: {detail}"


def find_lr(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    train_loader: Iterable[Any],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: str = "exp",
    smooth: float = 0.05,
    diverge: float = 4.0,
    val_loader: Iterable[Any] | None = None,
    accumulation_steps: int = 1,
    amp: bool = False,
    halving: bool = False,
    confirm: int | None = None,
    regression: bool | None = None,
    repeats: int = 1,
    batch_fn: Callable[[Any], tuple[Any, Any]] | None = None,
    inputs: str | Sequence[str] | None = None,
    targets: str | Sequence[str] | None = None,
    progress: Progress | None = None,
) -> FinderResult:
    """Run an LR range test on ``model`` and recommend a learning rate.

    The LR rises from ``start_lr`` to ``end_lr`` over ``num_iter`` optimizer steps
    (geometrically for ``mode="exp"``, arithmetically for ``"linear"``); each step sees
    ``accumulation_steps`` batches of ``train_loader`` (re-iterated as often as needed).
    The loss recorded is the training loss of that step, or the mean loss over
    ``val_loader`` after it when one is given (slower, smoother). A step whose loss is not
    finite is skipped (recorded as NaN); the test stops early once the smoothed loss
    exceeds ``diverge`` times its best value. ``amp=True`` trains under CUDA autocast
    (float16) with a gradient scaler. ``halving=True`` also runs the article's halving
    search (``lrlab.finder.halving.halving_search``) from ``end_lr`` down and adds its
    result as the ``"halving"`` suggestion. ``repeats=N`` runs the test N times from the same
    state, each on the next ``num_iter`` steps' batches of the loader, and the rules read the
    mean of the N loss curves (up to the shortest; ``config["repeat_losses"]`` keeps each): a
    steadier answer for N times the cost. ``progress(iteration, total, lr, loss)`` is called
    after every step (``total`` is ``num_iter`` x ``repeats``).

    The recommendation is the default rule for the optimizer's family
    (``suggest.default_rule``); for a regression loss (``regression=None`` recognises it with
    ``is_regression_loss``, ``True``/``False`` says it) the rule is the same and the reason
    adds that the LR wants checking with a short sweep, and so it does for an optimizer the rule
    was neither fitted nor checked on (``suggest.optimizer_note``); with ``confirm=N`` steps (``None``: the default,
    ``suggest.DEFAULT_CONFIRM_STEPS``; 0: off) the candidates ``suggest.confirm_candidates``
    are each trained ``N`` steps from the same state on the same batches and the one with
    the lowest loss on held-back batches is recommended (``lrlab.finder.confirm``). Where the
    curve cannot tell (flat, never turning up, too short, diverged at once),
    ``result.problem`` says so with what to try and ``result.reason`` names the fallback.

    Batches: ``(inputs, targets, *extra)`` tuples, dicts read by key names (``inputs="input_ids",
    targets="labels"``), anything ``batch_fn(batch) -> (inputs, targets)`` splits, or, with
    ``loss_fn=None``, batches the model turns into its own loss (``model(**batch).loss``).

    Afterwards the model (parameters, buffers, gradients, train/eval mode), the optimizer
    (state, hyperparameters, a tensor ``lr``'s identity, torch's private call-order flag)
    and the random generators are exactly as before, also when the test raises or is
    interrupted. Nothing is written to disk.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> x = torch.randn(256, 4); y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        >>> loader = DataLoader(TensorDataset(x, y.unsqueeze(1)), batch_size=32, shuffle=True)
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> result = find_lr(model, opt, torch.nn.functional.mse_loss, loader, num_iter=60)
        >>> 1e-3 < result.lr < 1.0, result.problem
        (True, None)
    """
    _check_objects(model, optimizer, loss_fn, batch_fn, progress, {"amp": amp, "halving": halving})
    ramp = _Ramp(start_lr, end_lr, num_iter, mode, smooth, diverge)
    check_count("accumulation_steps", accumulation_steps, 1, "batches per step", maximum=MAX_NUM_ITER)
    check_count("repeats", repeats, 1, "range tests to average", maximum=MAX_REPEATS)
    confirm_steps = suggest.DEFAULT_CONFIRM_STEPS if confirm is None else confirm
    check_count("confirm", confirm_steps, 0, "steps per candidate; 0 turns it off", maximum=MAX_NUM_ITER)
    check_reiterable(train_loader, "train_loader")
    check_reiterable(val_loader, "val_loader")
    reader = BatchReader(loss_fn, batch_fn, inputs, targets)
    stepper = Stepper(model, optimizer, loss_fn, accumulation_steps, amp, reader)
    regression = _is_regression(regression, loss_fn)
    trainee = _Trainee(model, optimizer, loss_fn, train_loader, val_loader, reader, accumulation_steps, amp)
    saved = capture(model, optimizer, [train_loader] + ([val_loader] if val_loader is not None else []))
    _check_first_batch(stepper, train_loader, saved)
    started = time.perf_counter()
    tests = [
        _range_test(stepper, saved, train_loader, val_loader, ramp, _shifted(progress, k * num_iter, num_iter * repeats),
                    skip=k * num_iter * accumulation_steps)
        for k in range(repeats)
    ]  # fmt: skip
    lrs, loss_array, diverged = _mean_curve(tests)
    lr_array = np.asarray(lrs, dtype=np.float64)
    smoothed_array = suggest.smooth_losses(loss_array, smooth)
    suggestions = suggest.suggest_all(lr_array, smoothed_array) if len(lr_array) >= 2 else {}
    config: dict[str, Any] = {
        "start_lr": start_lr,
        "end_lr": end_lr,
        "num_iter": num_iter,
        "mode": mode,
        "smooth": smooth,
        "diverge": diverge,
        "accumulation_steps": accumulation_steps,
        "amp": amp,
        "validation": val_loader is not None,
        "iterations_run": len(lrs),
        "confirm": confirm_steps,
        "regression": regression,
        "repeats": repeats,
    }
    if repeats > 1:
        config["repeat_losses"] = [[v if math.isfinite(v) else None for v in t[1]] for t in tests]
    if halving:
        _halving(trainee, ramp, suggestions, config)
    sgd = is_sgd_family(optimizer)
    verdict = suggest.read_curve(lr_array, smoothed_array, diverged=diverged, sgd=sgd, end_lr=end_lr)
    rule, lr, reason = _decision(verdict, suggestions, diverged and len(lrs) < 10, sgd, regression,
                                 type(optimizer).__name__)  # fmt: skip
    if confirm_steps and verdict.problem is None and math.isfinite(lr):
        rule, lr, reason = _confirm(trainee, verdict.minimum, sgd, confirm_steps, suggestions, config,
                                    (rule, lr, reason))  # fmt: skip
    measured = FinderRecord(id="", task="", optimizer="", lrs=lr_array, losses=loss_array, smoothed=smoothed_array,
                            suggestions=suggestions, lr=lr, reason=reason, config=config)  # fmt: skip
    return FinderResult(measured, rule, diverged, time.perf_counter() - started, verdict.problem)


def _check_objects(
    model: Any, optimizer: Any, loss_fn: Any, batch_fn: Any, progress: Any, flags: dict[str, Any]
) -> None:
    """``TypeError``/``ValueError`` naming the argument, before anything trains: a model that
    is no module, an optimizer that is none or holds none of the model's parameters, a loss,
    batch_fn or progress that cannot be called, a flag that is not True or False."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer built on the model's parameters, got {type(optimizer).__name__}"
        )
    owned = {id(p) for p in model.parameters()}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    if owned and not any(id(p) in owned for p in held):
        raise ValueError(
            "optimizer holds none of the model's parameters (built on another model?): build it on model.parameters()"
        )
    for name, fn in (("loss_fn", loss_fn), ("batch_fn", batch_fn), ("progress", progress)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function or None, got {type(fn).__name__} {fn!r}")
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")


def _check_first_batch(stepper: Stepper, train_loader: Iterable[Any], saved: TrainingState) -> None:
    """The model's forward pass on ``train_loader``'s first batch (no step; everything it
    touched put back): inputs that do not fit the model are a ``ValueError`` naming
    ``train_loader`` and the shapes, before any training."""
    from lrlab.finder.batches import _call
    from lrlab.torch_utils import to_device

    try:
        batch = next(iter(train_loader))
    except StopIteration:
        saved.restore()
        raise ValueError("train_loader yielded no batches") from None
    model_inputs: Any = batch
    try:
        model_inputs, _ = stepper.reader.split(batch)
        with torch.no_grad(), stepper.autocast():
            _call(stepper.model, to_device(model_inputs, stepper.device))
    except ValueError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"train_loader: the model fails on the first batch (inputs {_describe(model_inputs)}): "
            f"{type(exc).__name__}: {text}; give the model inputs of the shape its first layer takes"
        ) from None
    finally:
        saved.restore()


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}, {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def _is_regression(regression: bool | None, loss_fn: Any) -> bool:
    """``regression`` as given, or, for None, whether ``loss_fn`` is a regression loss."""
    if regression is None:
        return is_regression_loss(loss_fn)
    if not isinstance(regression, bool):
        raise ValueError(f"regression must be True, False or None (recognise the loss), got {regression!r}")
    return regression


def _decision(
    verdict: suggest.CurveVerdict,
    suggestions: dict[str, float],
    diverged_early: bool,
    sgd: bool,
    regression: bool,
    optimizer_name: str,
) -> tuple[str | None, float, str]:
    """The rule, LR and reason the curve gives: the curve's own fallback where it cannot
    tell, else the optimizer family's default rule; with the curve's note, and a word on an
    optimizer the rules were not fitted on."""
    if verdict.fallback is not None:
        rule, lr, reason = verdict.fallback
    else:
        rule, lr, reason = _recommend(suggestions, diverged_early=diverged_early, sgd=sgd, regression=regression)
    if verdict.note:
        reason = f"{reason}; {verdict.note}"
    untested = suggest.optimizer_note(optimizer_name)
    if untested and verdict.problem is None:
        reason = f"{reason}; {untested}"
    return rule, lr, reason


def _halving(trainee: _Trainee, ramp: _Ramp, suggestions: dict[str, float], config: dict[str, Any]) -> None:
    """The article's halving search from ``end_lr`` down to ``start_lr``: its LR becomes the
    ``"halving"`` suggestion and its trials go into ``config``."""
    searched = halving_search(
        trainee.model, trainee.optimizer, trainee.loss_fn, trainee.train_loader, start_lr=ramp.end_lr,
        min_lr=ramp.start_lr, accumulation_steps=trainee.accumulation_steps, amp=trainee.amp, reader=trainee.reader,
    )  # fmt: skip
    if searched.lr is not None:
        suggestions["halving"] = searched.lr
    config["halving_trials"] = [[lr, list(p)] for lr, p in searched.trials]


def _range_test(
    stepper: Stepper,
    saved: TrainingState,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    ramp: _Ramp,
    progress: Progress | None,
    *,
    skip: int = 0,
) -> tuple[list[float], list[float], bool]:
    lrs: list[float] = []
    losses: list[float] = []
    diverged = False
    try:
        stepper.model.train()
        batches = cycle(train_loader)
        for _ in range(skip):  # a repeat starts on batches the earlier tests did not see
            next(batches)
        best, average, count, nonfinite_run = math.inf, 0.0, 0, 0
        smooth = ramp.smooth
        beta = 1.0 - smooth
        for iteration in range(ramp.num_iter):
            lr = ramp.lr(iteration)
            stepper.set_lr(lr)
            loss = stepper.step(batches)
            if val_loader is not None and math.isfinite(loss):
                loss = stepper.evaluate(val_loader)
            lrs.append(lr)
            losses.append(loss)
            if progress is not None:
                progress(iteration, ramp.num_iter, lr, loss)
            if not math.isfinite(loss):
                nonfinite_run += 1
                if nonfinite_run >= _MAX_NONFINITE_IN_A_ROW:
                    diverged = True
                    break
                continue
            nonfinite_run = 0
            count += 1
            average = beta * average + smooth * loss
            smoothed = loss if smooth == 0.0 else average / (1.0 - beta**count)
            best = min(best, smoothed)
            if smoothed > ramp.diverge * best:
                diverged = True
                break
    finally:
        saved.restore()
    return lrs, losses, diverged


def _shifted(progress: Progress | None, offset: int, total: int) -> Progress | None:
    """``progress`` counting the iterations of every repeat as one run of ``total``."""
    if progress is None:
        return None

    def report(iteration: int, _num_iter: int, lr: float, loss: float) -> None:
        progress(offset + iteration, total, lr, loss)

    return report


def _mean_curve(tests: list[tuple[list[float], list[float], bool]]) -> tuple[list[float], np.ndarray, bool]:
    """The LRs, the mean loss per iteration over the tests (NaN where every test's was) and
    whether the test that stopped first diverged, up to the shortest test."""
    length = min(len(t[0]) for t in tests)
    losses = np.asarray([t[1][:length] for t in tests], dtype=np.float64).reshape(len(tests), length)
    finite = np.isfinite(losses)
    counts = finite.sum(axis=0)
    totals = np.where(finite, losses, 0.0).sum(axis=0)
    mean = np.divide(totals, counts, out=np.full(length, np.nan), where=counts > 0)
    diverged = any(t[2] and len(t[0]) == length for t in tests)
    return tests[0][0][:length], mean, diverged


def _confirm(
    trainee: _Trainee,
    minimum: float,
    sgd: bool,
    steps: int,
    suggestions: dict[str, float],
    config: dict[str, Any],
    fallback: tuple[str | None, float, str],
) -> tuple[str | None, float, str]:
    candidates = suggest.confirm_candidates(minimum, sgd)
    checked = confirm_lrs(
        trainee.model, trainee.optimizer, trainee.loss_fn, trainee.train_loader, candidates, steps=steps,
        val_loader=trainee.val_loader, accumulation_steps=trainee.accumulation_steps, amp=trainee.amp,
        reader=trainee.reader,
    )  # fmt: skip
    config["confirmation"] = {
        "lrs": checked.lrs,
        "losses": [row[-1] for row in checked.losses],
        "steps": steps,
        "seconds": checked.seconds,
    }
    if checked.lr is None:
        rule, lr, reason = fallback
        return rule, lr, f"{reason}; every confirmation candidate blew up within {steps} steps"
    suggestions["confirmed"] = checked.lr
    return "confirmed", checked.lr, suggest.confirm_reason(checked.lr, candidates, minimum, steps, sgd)
