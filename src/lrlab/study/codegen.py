"""Copy-pasteable code for a recommended optimizer + schedule: PyTorch, Lightning,
Hugging Face and Keras; for a trial function (``@lrlab.trainable``), the optimizer and
scheduler lines to paste into it or into any loop (:func:`trainable_snippet`).

Given the number of steps the study trained for (``study_steps``), the schedule is written
as a function of the user's own ``total_steps`` (each step count a fraction of the run:
a warmup of 5% stays 5% of a longer run), computed in the snippet from the user's loader
length and epochs. Without it, the schedule is pasted as measured, in absolute steps.
"""

from __future__ import annotations

import warnings
from typing import Any

from lrlab.core.horizon import HORIZON, HorizonLaw, horizon_advice
from lrlab.core.records import default_momentum
from lrlab.optim.lr_free import LR_FREE_OPTIMIZERS, SCHEDULE_FREE
from lrlab.schedules import Schedule, from_dict, momentum_for, parse

__all__ = [
    "TRAINABLE_ONLY",
    "hf_snippet",
    "horizon_note",
    "keras_snippet",
    "lightning_snippet",
    "scale_lrs",
    "schedule_for",
    "step_template",
    "torch_snippet",
    "trainable_snippet",
]

TRAINABLE_ONLY = (
    "# a trial function is a PyTorch loop of your own: no Keras, Lightning or Hugging Face code applies; "
    "see the PyTorch code\n"
)
"""What stands in place of the Keras, Lightning and Hugging Face code of a trainable's study."""

# The torch class comes from the optimizer grammar; Keras 3 has only some of them, one
# under its own spelling.
_KERAS_HAS = frozenset(
    {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "adafactor"}
)
_KERAS_SPELLING = {"nadam": "Nadam"}
# torch keyword -> Keras keyword (``betas`` is split into beta_1 / beta_2).
_KERAS_KEYWORDS = {
    "momentum": "momentum", "nesterov": "nesterov", "eps": "epsilon", "weight_decay": "weight_decay",
    "amsgrad": "amsgrad", "alpha": "rho", "rho": "rho", "centered": "centered",
}  # fmt: skip


# Parameters that count optimizer steps (scaled with the run's length).
_STEP_KEYS = frozenset({"total_steps", "steps", "step_size", "decay_steps", "warmup_steps", "boundaries"})
_SENTINEL = 900_000_001  # stands for a step count while the spec is formatted


def _walk(data: Any, study_steps: int, visit: Any) -> Any:
    """``data`` (a schedule's ``to_dict``) with every step count replaced by ``visit(fraction)``."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in _STEP_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = visit(float(value) / study_steps)
            elif key in _STEP_KEYS and isinstance(value, list):
                out[key] = [visit(float(v) / study_steps) for v in value]
            else:
                out[key] = _walk(value, study_steps, visit)
        return out
    if isinstance(data, list):
        return [_walk(v, study_steps, visit) for v in data]
    return data


def _steps(fraction: float, total_steps: int) -> int:
    return total_steps if fraction == 1.0 else max(1, round(float(f"{fraction:.4g}") * total_steps))


def schedule_for(
    schedule: Schedule | str, study_steps: int, total_steps: int, *, law: HorizonLaw | None = HORIZON
) -> Schedule:
    """``schedule`` (measured over ``study_steps`` steps) stretched to a run of
    ``total_steps``: every step count keeps its fraction of the run, and the LRs follow the
    horizon ``law`` measured on the run-length ladder (:mod:`lrlab.core.horizon`): kept where
    the ladder cannot tell the optimum moved, else scaled by its factor. A run longer than the
    longest measured warns in one line. ``law=None`` keeps the LRs without a word.

    >>> str(schedule_for("warmup(cosine(lr=0.1, total_steps=570), steps=30)", 600, 6000, law=None))
    'warmup(cosine(lr=0.1, total_steps=5700), steps=300)'
    """
    schedule = parse(schedule) if isinstance(schedule, str) else schedule
    if study_steps < 1 or total_steps < 1:
        raise ValueError(f"study_steps and total_steps must be >= 1, got {study_steps} and {total_steps}")
    stretched = from_dict(_walk(schedule.to_dict(), study_steps, lambda f: _steps(f, total_steps)))
    if law is None:
        return stretched
    advice = horizon_advice(study_steps, total_steps, law)
    if advice.warning is not None:
        warnings.warn(advice.warning, UserWarning, stacklevel=2)
    return stretched if advice.kept else scale_lrs(stretched, advice.factor)


# Parameters that are learning rates (scaled when the horizon law corrects the LR).
_LR_KEYS = frozenset({"lr", "base_lr", "max_lr", "final_lr", "start_lr", "end_lr"})


def scale_lrs(schedule: Schedule, factor: float) -> Schedule:
    """``schedule`` with every LR in it multiplied by ``factor`` (its shape and steps kept).

    >>> str(scale_lrs(parse("cyclic(base_lr=0.01, max_lr=0.1, step_size=10)"), 0.5))
    'cyclic(base_lr=0.005, max_lr=0.05, step_size=10)'
    """

    def scaled(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v * factor if k in _LR_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
                    else scaled(v) for k, v in data.items()}  # fmt: skip
        return [scaled(v) for v in data] if isinstance(data, list) else data

    return from_dict(scaled(schedule.to_dict()))


def horizon_note(study_steps: int, law: HorizonLaw = HORIZON, *, measured: str = "the study's") -> str:
    """The comment a snippet carries on the LR it keeps for the user's run length: which rule
    and why, and up to which run length it was measured (``measured`` names the runs that
    were ``study_steps`` long)."""
    import textwrap

    advice = horizon_advice(study_steps, study_steps, law)
    longest = round(law.longest * study_steps)
    text = (
        f"{advice.reason}. Measured up to x{law.longest:g} {measured} {study_steps} steps ({longest} steps); "
        "longer runs extrapolate."
    )
    return "".join(f"# {line}\n" for line in textwrap.wrap(text, 96))


def step_template(schedule: Schedule | str, study_steps: int) -> str:
    """The spec of ``schedule`` as a Python f-string in ``total_steps`` (the user's run).

    >>> step_template("warmup(cosine(lr=0.1, total_steps=570), steps=30)", 600)
    'f"warmup(cosine(lr=0.1, total_steps={max(1, round(0.95 * total_steps))}), steps={max(1, round(0.05 * total_steps))})"'
    >>> step_template("cosine(lr=0.1, total_steps=600)", 600)
    'f"cosine(lr=0.1, total_steps={total_steps})"'
    """
    schedule = parse(schedule) if isinstance(schedule, str) else schedule
    fractions: list[float] = []

    def mark(fraction: float) -> int:
        fractions.append(fraction)
        return _SENTINEL + len(fractions) - 1

    text = str(from_dict(_walk(schedule.to_dict(), study_steps, mark)))
    if not fractions:
        return repr(text)
    text = text.replace("{", "{{").replace("}", "}}")
    for i, fraction in enumerate(fractions):
        expr = "total_steps" if fraction == 1.0 else f"max(1, round({fraction:.4g} * total_steps))"
        text = text.replace(str(_SENTINEL + i), "{" + expr + "}", 1)
    quote = "'" if '"' in text else '"'
    return f"f{quote}{text}{quote}"


def _schedule_lines(schedule: str, study_steps: int | None, steps_expr: str) -> tuple[str, str]:
    """The lines that define ``schedule`` and the expression that builds it."""
    if study_steps is None:
        return "", f"parse({schedule!r})"
    template = step_template(schedule, study_steps)
    if not template.startswith("f"):  # no step counts: the same schedule for any run
        return "", f"parse({schedule!r})"
    lines = (
        f"total_steps = {steps_expr}  # your run's optimizer steps\n"
        f"{horizon_note(study_steps)}"
        f"schedule = parse({template})  # step counts as fractions of your run\n"
    )
    return lines, "schedule"


def _with_momentum(
    optimizer: str, schedule: str, momentum: str | None, study_steps: int | None, steps_expr: str
) -> tuple[str, str, str]:
    """The lines that define the schedule (and the momentum schedule, if the run has one),
    the schedule's expression and ``LRScheduler``'s ``momentum=`` argument (``""`` without).

    The momentum is ``momentum``, else the default of a run of ``optimizer`` and
    ``schedule`` (:func:`~lrlab.core.records.default_momentum`: a one-cycle's momentum
    0.95 -> 0.85 -> 0.95 with an optimizer that has one), so the code drives what ran.
    """
    lines, built = _schedule_lines(schedule, study_steps, steps_expr)
    lr = parse(schedule)
    drive = parse(momentum) if momentum is not None else default_momentum(optimizer, lr)
    if drive is None:
        return lines, built, ""
    if built != "schedule":  # named once, for the LR and the momentum
        lines, built = lines + f"schedule = {built}\n", "schedule"
    if drive == momentum_for(lr):
        return lines + "momentum = momentum_for(schedule)  # 0.95 -> 0.85 -> 0.95, inverse to the LR\n", built, (
            ", momentum=momentum"
        )
    own, made = _schedule_lines(str(drive), study_steps, steps_expr)
    for line in own.splitlines(keepends=True):
        if line.startswith("schedule = "):
            lines += "momentum = " + line[len("schedule = ") :]
        elif line not in lines:  # the run's total_steps, when the LR schedule did not need it
            lines = line + lines
    if made != "schedule":
        lines += f"momentum = {made}\n"
    return lines, built, ", momentum=momentum"


def _schedule_import(driven: str) -> str:
    return "from lrlab.schedules import momentum_for, parse\n" if "momentum_for" in driven else (
        "from lrlab.schedules import parse\n"
    )


def _py(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_py(v) for v in value) + ")"
    return repr(value)


def _torch_kwargs(kwargs: dict[str, Any]) -> str:
    return "".join(f", {key}={_py(value)}" for key, value in kwargs.items())


def _torch_optimizer(optimizer: str, schedule: str, params: str) -> tuple[str, str]:
    """The import lines and the ``optimizer = ...`` line."""
    import torch

    from lrlab.optim.grammar import OPTIMIZER_CLASSES, parse_optimizer

    start = float(f"{parse(schedule)(0):.6g}")  # overwritten by the scheduler at once
    name, kwargs = parse_optimizer(optimizer)
    cls = OPTIMIZER_CLASSES[name].__name__
    if name in LR_FREE_OPTIMIZERS:  # from its own library
        entry = LR_FREE_OPTIMIZERS[name]
        imports, ref = f"from {entry.package} import {entry.class_name}\n", entry.class_name
    elif getattr(torch.optim, cls, None) is OPTIMIZER_CLASSES[name]:
        imports, ref = "import torch\n", f"torch.optim.{cls}"
    else:  # one of lrlab's own optimizers
        imports, ref = f"from lrlab.optim import {cls}\n", cls
    return imports, f"{ref}({params}, lr={start!r}{_torch_kwargs(kwargs)})"


def torch_snippet(
    optimizer: str, schedule: str, *, study_steps: int | None = None, momentum: str | None = None
) -> str:
    """PyTorch code that reproduces ``optimizer`` driven by ``schedule`` in the user's loop
    (``model``, ``train_loader``, ``loss_fn`` and ``epochs`` are the user's). ``momentum`` is
    the run's momentum schedule; None: the run's default (a one-cycle with an optimizer
    that has a momentum cycles it, and the code then drives it too).

    >>> print(torch_snippet("sgd(momentum=0.9)", "cosine(lr=0.1, total_steps=1000)").splitlines()[4])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """
    if _schedule_free(optimizer):
        return _schedule_free_torch(optimizer, schedule)
    imports, make = _torch_optimizer(optimizer, schedule, "model.parameters()")
    lines, built, driven = _with_momentum(optimizer, schedule, momentum, study_steps, "len(train_loader) * epochs")
    return (
        f"{imports}"
        f"{_schedule_import(lines)}"
        "from lrlab.torch import LRScheduler\n\n"
        f"optimizer = {make}\n"
        f"{lines}"
        f"scheduler = LRScheduler(optimizer, {built}{driven})\n\n"
        "for epoch in range(epochs):\n"
        "    for inputs, targets in train_loader:\n"
        "        optimizer.zero_grad()\n"
        "        loss_fn(model(inputs), targets).backward()\n"
        "        optimizer.step()\n"
        "        scheduler.step()  # once per optimizer step, after optimizer.step()\n"
    )


def trainable_snippet(
    optimizer: str,
    schedule: str,
    *,
    trainable: str,
    study_steps: int | None = None,
    momentum: str | None = None,
) -> str:
    """The lines to paste into the trial function ``trainable`` (in place of
    ``trial.optimizer`` and ``trial.scheduler``) or into any loop of one's own: the
    optimizer and :class:`lrlab.torch.LRScheduler` with the schedule, stepped once per
    optimizer step. The run's length is ``epochs * steps_per_epoch`` (what the function's
    ``@lrlab.trainable`` declares, or the user's own run). No data loop, no loss: the
    function has its own.

    >>> code = trainable_snippet("adam", "constant(lr=0.01)", trainable="reinforce")
    >>> "reinforce" in code and "scheduler = LRScheduler(optimizer, " in code and "train_loader" not in code
    True
    """
    head = (
        f"# for your trial function {trainable} (in place of trial.optimizer / trial.scheduler), or any loop:\n"
        "# `model` is what it trains\n"
    )
    imports, make = _torch_optimizer(optimizer, schedule, "model.parameters()")
    if _schedule_free(optimizer):
        return (
            f"{head}{imports}\n"
            f"optimizer = {make}  # schedule-free: no LR scheduler\n"
            "# optimizer.train() wherever the model trains, optimizer.eval() before every evaluation\n"
        )
    steps_expr = "epochs * steps_per_epoch"  # as the function's @lrlab.trainable declares them
    lines, built, driven = _with_momentum(optimizer, schedule, momentum, study_steps, steps_expr)
    return (
        f"{head}{imports}"
        f"{_schedule_import(lines)}"
        "from lrlab.torch import LRScheduler\n\n"
        f"optimizer = {make}\n"
        f"{lines}"
        f"scheduler = LRScheduler(optimizer, {built}{driven})\n"
        "# then after every optimizer.step(): scheduler.step()  (once per optimizer step)\n"
    )


def lightning_snippet(
    optimizer: str, schedule: str, *, study_steps: int | None = None, momentum: str | None = None
) -> str:
    """A LightningModule's ``configure_optimizers`` with the schedule stepped every batch;
    the run's length is Lightning's ``estimated_stepping_batches`` (loader length x
    ``max_epochs``, over gradient accumulation).

    >>> "interval" in lightning_snippet("adam", "cosine(lr=0.01, total_steps=100)", study_steps=100)
    True
    """
    if _schedule_free(optimizer):
        return _schedule_free_lightning(optimizer, schedule)
    imports, make = _torch_optimizer(optimizer, schedule, "self.parameters()")
    lines, built, driven = _with_momentum(
        optimizer, schedule, momentum, study_steps, "int(self.trainer.estimated_stepping_batches)"
    )
    body = "".join(f"        {line}\n" for line in lines.splitlines())
    return (
        f"{imports}"
        f"{_schedule_import(lines)}"
        "from lrlab.torch import LRScheduler\n\n\n"
        "# a method of your LightningModule\n"
        "    def configure_optimizers(self):\n"
        f"        optimizer = {make}\n"
        f"{body}"
        f"        scheduler = LRScheduler(optimizer, {built}{driven})\n"
        '        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}\n'
    )


def hf_snippet(
    optimizer: str, schedule: str, *, study_steps: int | None = None, momentum: str | None = None
) -> str:
    """A Hugging Face ``Trainer`` given the optimizer and the schedule (``optimizers=``);
    ``model``, ``args`` (``TrainingArguments``) and ``train_dataset`` are the user's.

    >>> "optimizers=(optimizer, scheduler)" in hf_snippet("adamw", "constant(lr=0.001)")
    True
    """
    if _schedule_free(optimizer):
        return _schedule_free_hf(optimizer, schedule)
    imports, make = _torch_optimizer(optimizer, schedule, "model.parameters()")
    steps = (
        "math.ceil(len(train_dataset) / (args.per_device_train_batch_size * args.gradient_accumulation_steps))"
        " * int(args.num_train_epochs)"
    )
    lines, built, driven = _with_momentum(optimizer, schedule, momentum, study_steps, steps)
    return (
        "import math\n\n"
        f"{imports}"
        "from transformers import Trainer\n\n"
        f"{_schedule_import(lines)}"
        "from lrlab.torch import LRScheduler\n\n"
        f"optimizer = {make}\n"
        f"{lines}"
        f"scheduler = LRScheduler(optimizer, {built}{driven})  # the Trainer steps it once per optimizer step\n"
        "trainer = Trainer(model=model, args=args, train_dataset=train_dataset, optimizers=(optimizer, scheduler))\n"
    )


_KERAS_LOSS = {
    "classification": '"sparse_categorical_crossentropy", metrics=["accuracy"]',
    "regression": '"mse", metrics=["mae"]',
    "language_model": '"sparse_categorical_crossentropy"',
}


def keras_snippet(
    optimizer: str, schedule: str, *, study_steps: int | None = None, kind: str = "classification",
    loss: str | None = None, momentum: str | None = None,
) -> str:
    """Keras 3 code with the same schedule driving the equivalent optimizer. It runs as
    pasted without TensorFlow: it picks the torch backend unless ``KERAS_BACKEND`` says
    otherwise. ``model``, ``x_train``, ``batch_size`` and ``epochs`` are the user's; the
    loss is the task's (``kind``), or ``loss`` (an expression) for a custom one.

    >>> print(keras_snippet("adam(betas=[0.9, 0.99])", "constant(lr=0.001)").splitlines()[10])
    optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.99)
    """
    from lrlab.optim.grammar import OPTIMIZER_CLASSES, parse_optimizer

    parse(schedule)
    name, kwargs = parse_optimizer(optimizer)
    if name in LR_FREE_OPTIMIZERS:
        entry = LR_FREE_OPTIMIZERS[name]
        return (
            f"# Keras has no {entry.class_name}: it is a PyTorch optimizer ({entry.package}); use the PyTorch code,\n"
            "# or the best configuration of an ordinary optimizer in recommendation.md\n"
        )
    cls = _KERAS_SPELLING.get(name, OPTIMIZER_CLASSES[name].__name__) if name in _KERAS_HAS else None
    args, dropped = [], []
    for key, value in kwargs.items():
        if key == "betas":
            args += [f"beta_1={_py(value[0])}", f"beta_2={_py(value[1])}"]
        elif key in _KERAS_KEYWORDS:
            args.append(f"{_KERAS_KEYWORDS[key]}={_py(value)}")
        else:
            dropped.append(key)
    extra = "".join(f", {a}" for a in args)
    note = f"  # no Keras equivalent for: {', '.join(dropped)}" if dropped else ""
    if cls is None:
        cls, note = "SGD", f"  # Keras has no {name}; SGD shown instead"
    steps_expr = "math.ceil(len(x_train) / batch_size) * epochs"
    if note.startswith("  # Keras has no"):  # another optimizer: no momentum of the run's to drive
        (lines, built), driven = _schedule_lines(schedule, study_steps, steps_expr), ""
    else:
        lines, built, driven = _with_momentum(optimizer, schedule, momentum, study_steps, steps_expr)
    compiled = f"{loss}" if loss else _KERAS_LOSS.get(kind, _KERAS_LOSS["classification"])
    code = (
        "import math\n"
        "import os\n\n"
        'os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is first imported\n'
        "import keras\n\n"
        "from lrlab.keras import LearningRateSchedule\n"
        f"{_schedule_import(lines)}\n"
        f"{lines}"
        f"schedule = LearningRateSchedule({built})\n"
        f"optimizer = keras.optimizers.{cls}(learning_rate=schedule{extra}){note}\n"
        f"model.compile(optimizer=optimizer, loss={compiled})\n"
    )
    if not driven:
        return code
    attribute = "momentum" if name in ("sgd", "rmsprop") else "beta_1"
    return code + (
        "\n\nclass Momentum(keras.callbacks.Callback):\n"
        f'    """Sets the optimizer\'s {attribute} from the momentum schedule before each step."""\n\n'
        "    def on_train_batch_begin(self, batch, logs=None):\n"
        f"        optimizer.{attribute} = float(momentum(int(optimizer.iterations)))\n\n\n"
        "# model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=[Momentum()])\n"
    )


# ------------------------------------------------------------------ schedule-free optimizers
# They replace the schedule (no LRScheduler: the LR stays constant, their own warmup_steps
# aside) and keep two points: optimizer.train() wherever the model trains, optimizer.eval()
# before every evaluation and before the weights are saved (lrlab.optim.lr_free).


def _schedule_free(optimizer: str) -> bool:
    from lrlab.optim.grammar import parse_optimizer

    return parse_optimizer(optimizer)[0] in SCHEDULE_FREE


_BN_NOTE = (
    "# with BatchNorm, recompute its statistics at the evaluation point first:\n"
    "# lrlab.optim.recompute_batchnorm(model, optimizer, train_loader)\n"
)


def _schedule_free_torch(optimizer: str, schedule: str) -> str:
    """A plain loop with a schedule-free optimizer: no scheduler, ``train()``/``eval()``."""
    imports, make = _torch_optimizer(optimizer, schedule, "model.parameters()")
    return (
        f"{imports}\n"
        f"optimizer = {make}  # schedule-free: no LR scheduler\n\n"
        "for epoch in range(epochs):\n"
        "    model.train()\n"
        "    optimizer.train()  # wherever the model goes to train()\n"
        "    for inputs, targets in train_loader:\n"
        "        optimizer.zero_grad()\n"
        "        loss_fn(model(inputs), targets).backward()\n"
        "        optimizer.step()\n"
        "    model.eval()\n"
        "    optimizer.eval()  # before every evaluation and before saving the weights\n"
        + "".join(f"    {line}\n" for line in _BN_NOTE.splitlines())
    )


def _schedule_free_lightning(optimizer: str, schedule: str) -> str:
    imports, make = _torch_optimizer(optimizer, schedule, "self.parameters()")
    return (
        f"{imports}\n\n"
        "# methods of your LightningModule (schedule-free: no LR scheduler)\n"
        "    def configure_optimizers(self):\n"
        f"        return {make}\n\n"
        "    def on_train_batch_start(self, batch, batch_idx):\n"
        "        self.optimizers().train()  # a no-op when it already is\n\n"
        "    def on_validation_epoch_start(self):\n"
        "        self.optimizers().eval()\n\n"
        "    def on_save_checkpoint(self, checkpoint):\n"
        "        self.optimizers().eval()  # the weights saved at the evaluation point\n"
    )


def _schedule_free_hf(optimizer: str, schedule: str) -> str:
    imports, make = _torch_optimizer(optimizer, schedule, "model.parameters()")
    return (
        "import torch\n"
        f"{imports}"
        "from transformers import Trainer\n\n"
        f"optimizer = {make}\n"
        "# schedule-free: a constant LR (without a scheduler the Trainer would add its linear decay);\n"
        "# the Trainer calls optimizer.train() and optimizer.eval() itself\n"
        "scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)\n"
        "trainer = Trainer(model=model, args=args, train_dataset=train_dataset, optimizers=(optimizer, scheduler))\n"
    )
