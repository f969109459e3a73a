"""The run store: typed records, the SQLite store and its queries. Imports no torch.

>>> from lrlab.store import Store
>>> Store(":memory:").sweeps()
[]
"""

from lrlab.core.records import EpochRecord, FinderRecord, RunConfig, RunRecord, RunStatus, StepSeries
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
from lrlab.store.sqlite import DEFAULT_DB, SCHEMA_VERSION, Store

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
    "epochs_frame",
    "export_records",
    "flat_record",
    "load_runs",
    "open_store",
    "runs_frame",
    "steps_frame",
]
