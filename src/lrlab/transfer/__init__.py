"""``lrlab.transfer``: the optimal learning rate predicted at a target scale from small proxies, with an interval.

``lrlab.transfer(factory, axis="width", proxies=[32, 64, 128], target=1024, ...)`` runs it:
this package is callable (:func:`lrlab.transfer.api.transfer`). ``checks`` holds the
argument checks, ``proxies`` the proxies' training, ``result`` the :class:`TransferResult`,
``figure`` its figure and page, ``selfcheck`` the checks it carries (the leave-one-out
self-check and the stability check).
"""

import sys
import types

from lrlab.transfer.checks import RUN_AXES, SCHEDULES, TransferError
from lrlab.transfer.result import TransferResult
from lrlab.transfer.selfcheck import Check, SelfCheck, Stability

__all__ = ["RUN_AXES", "SCHEDULES", "Check", "SelfCheck", "Stability", "TransferError", "TransferResult"]


class _CallableModule(types.ModuleType):
    """``lrlab.transfer(...)`` calls :func:`lrlab.transfer.api.transfer`; ``lrlab.transfer.X`` stays the package."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        from lrlab.transfer.api import transfer

        return transfer(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
