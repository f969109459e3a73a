"""Write a report (the HTML page and, optionally, a PNG/SVG of every figure) or one figure
to a file whose suffix picks the renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lrlab.plot.spec import FigureSpec
from lrlab.report.data import ReportData
from lrlab.report.figures import build_figures

HTML_SUFFIXES = (".html", ".htm")
IMAGE_FORMATS = ("png", "svg")


@dataclass(frozen=True)
class ReportFiles:
    html: Path | None
    images: list[Path] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)


def write_report(
    data: ReportData,
    out: Path | None,
    *,
    image_dir: Path | None = None,
    formats: Sequence[str] = ("png",),
    log_y: bool = False,
) -> ReportFiles:
    """Write ``out`` (.html) and, when ``image_dir`` is given, ``report_<figure>.<fmt>`` there."""
    if out is not None and out.suffix.lower() not in HTML_SUFFIXES:
        raise ValueError(f"out must end in .html, got {out.name!r}")
    bad = [f for f in formats if f not in IMAGE_FORMATS]
    if bad:
        raise ValueError(f"formats must be among {', '.join(IMAGE_FORMATS)}, got {bad}")
    figures: list[FigureSpec] = build_figures(data, log_y=log_y)
    html_path = None
    if out is not None:
        from lrlab.report.html import write_html

        html_path = write_html(data, figures, out)
    images = []
    if image_dir is not None:
        from lrlab.plot.static import write_figure

        for spec in figures:
            for fmt in formats:
                images.append(write_figure(spec, image_dir / f"report_{spec.key}.{fmt}"))
    return ReportFiles(html_path, images, [f.key for f in figures])
