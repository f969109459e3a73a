"""lrlab: a learning-rate lab for people who train neural networks."""

__version__ = "0.1.0"

from lrlab import deprecation as _deprecation

_deprecation.install()  # documented import paths that moved keep working, with a warning

# Public names imported on first use, so that ``import lrlab`` stays light (no torch).
# One line per name: "name": "module that defines it".
_LAZY = {
    "param_groups": "lrlab.finetune",
    "find_lr": "lrlab.finder",
    "study": "lrlab.study",  # the package is callable: lrlab.study(model_fn, train, val, ...)
    "track": "lrlab.track",  # the module is callable: lrlab.track(optimizer, name=...)
    "transfer": "lrlab.transfer",  # the package is callable: lrlab.transfer(factory, axis=..., ...)
    "trainable": "lrlab.training.trial",  # @lrlab.trainable(objective=..., epochs=..., steps_per_epoch=...)
    "Trial": "lrlab.training.trial",
    "Pruned": "lrlab.training.trial",
    "export": "lrlab.export",  # lrlab.export.TensorBoard(dir), lrlab.export.MLflow(uri): track(export=[...])
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)
    raise AttributeError(f"module 'lrlab' has no attribute {name!r}")
