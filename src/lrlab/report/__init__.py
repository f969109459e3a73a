"""The report: figures and diagnostics from stored runs (no torch here).

``load_report_data(store, sweep=...)`` reads records, ``write_report(data, out, image_dir=...)``
writes the interactive HTML page and PNG/SVG figures; the diagnostics are pure functions in
``lrlab.report.diagnostics`` and the downsampling in ``lrlab.report.downsample``.
"""

from lrlab.report.data import ReportData, build_report_data, load_report_data
from lrlab.report.diagnostics import Finding, diagnose
from lrlab.report.downsample import downsample, downsample_indices
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
