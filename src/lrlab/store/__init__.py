"""The run store: persistence only (the records live in :mod:`lrlab.core.records`).
Imports no torch.

``sqlite`` (the :class:`Store`), ``schema`` (tables and migrations), ``claims`` (owners and
leases), ``codec`` (step blocks), ``runs`` and ``range_tests`` (rows and records),
``location`` (the one default store), ``queries`` (records and DataFrames for users).

>>> from lrlab.store import Store
>>> Store(":memory:").sweeps()
[]
"""

from lrlab.core.records import EpochRecord, FinderRecord, RunConfig, RunRecord, RunStatus, StepSeries
from lrlab.store.errors import StoreError
from lrlab.store.location import DEFAULT_DB, resolve_default_db
from lrlab.store.queries import (
    EXPORT_COLUMNS,
    FINAL_METRICS,
    epochs_frame,
    export_records,
    flat_record,
    load_runs,
    open_store,
    runs_frame,
    steps_frame,
)
from lrlab.store.schema import SCHEMA_VERSION
from lrlab.store.sqlite import Store

__all__ = [
    "DEFAULT_DB",
    "EXPORT_COLUMNS",
    "FINAL_METRICS",
    "SCHEMA_VERSION",
    "EpochRecord",
    "FinderRecord",
    "RunConfig",
    "RunRecord",
    "RunStatus",
    "StepSeries",
    "Store",
    "StoreError",
    "epochs_frame",
    "export_records",
    "flat_record",
    "load_runs",
    "open_store",
    "resolve_default_db",
    "runs_frame",
    "steps_frame",
]
