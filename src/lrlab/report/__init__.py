"""The report: figures and diagnostics from stored runs (no torch here).

``load_report_data(store, sweep=...)`` reads records, ``write_report(data, out, image_dir=...)``
writes the interactive HTML page and PNG/SVG figures; the diagnostics are pure functions in
``lrlab.core.diagnostics`` and the downsampling in ``lrlab.plot.downsample``.
"""

from lrlab.core.diagnostics import Finding, diagnose
from lrlab.plot.downsample import downsample, downsample_indices
from lrlab.report.data import ReportData, build_report_data, load_report_data
from lrlab.report.render import ReportFiles, write_report

__all__ = [
    "Finding",
    "ReportData",
    "ReportFiles",
    "build_report_data",
    "diagnose",
    "downsample",
    "downsample_indices",
    "load_report_data",
    "write_report",
]
