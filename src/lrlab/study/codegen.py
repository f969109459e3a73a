"""Copy-pasteable code for a recommended optimizer + schedule, for PyTorch and Keras."""

from __future__ import annotations

from typing import Any

from lrlab.schedules import parse

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


def _py(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_py(v) for v in value) + ")"
    return repr(value)


def _torch_kwargs(kwargs: dict[str, Any]) -> str:
    return "".join(f", {key}={_py(value)}" for key, value in kwargs.items())


def torch_snippet(optimizer: str, schedule: str) -> str:
    """PyTorch code that reproduces ``optimizer`` driven by ``schedule`` in the user's loop.

    >>> print(torch_snippet("sgd(momentum=0.9)", "cosine(lr=0.1, total_steps=1000)").splitlines()[4])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """
    import torch

    from lrlab.optim.grammar import OPTIMIZER_CLASSES, parse_optimizer

    start = float(f"{parse(schedule)(0):.6g}")  # overwritten by the scheduler at once
    name, kwargs = parse_optimizer(optimizer)
    cls = OPTIMIZER_CLASSES[name].__name__
    if getattr(torch.optim, cls, None) is OPTIMIZER_CLASSES[name]:
        imports, ref = "import torch\n", f"torch.optim.{cls}"
    else:  # one of lrlab's own optimizers
        imports, ref = f"from lrlab.optim import {cls}\n", cls
    return (
        f"{imports}"
        "from lrlab.schedules import parse\n"
        "from lrlab.torch import LRScheduler\n\n"
        f"optimizer = {ref}(model.parameters(), lr={start!r}{_torch_kwargs(kwargs)})\n"
        f"scheduler = LRScheduler(optimizer, parse({schedule!r}))\n\n"
        "for epoch in range(epochs):\n"
        "    for inputs, targets in train_loader:\n"
        "        optimizer.zero_grad()\n"
        "        loss_fn(model(inputs), targets).backward()\n"
        "        optimizer.step()\n"
        "        scheduler.step()  # once per optimizer step, after optimizer.step()\n"
    )


def keras_snippet(optimizer: str, schedule: str) -> str:
    """Keras 3 code with the same schedule driving the equivalent optimizer.

    >>> print(keras_snippet("adam(betas=[0.9, 0.99])", "constant(lr=0.001)").splitlines()[5])
    optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.99)
    """
    from lrlab.optim.grammar import OPTIMIZER_CLASSES, parse_optimizer

    parse(schedule)
    name, kwargs = parse_optimizer(optimizer)
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
    return (
        "import keras\n"
        "from lrlab.keras import LearningRateSchedule\n"
        "from lrlab.schedules import parse\n\n"
        f"schedule = LearningRateSchedule(parse({schedule!r}))\n"
        f"optimizer = keras.optimizers.{cls}(learning_rate=schedule{extra}){note}\n"
        'model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])\n'
    )
