"""The report's table of a study's optimum LR per schedule family (the verdict's ``optima``).

Each row is a :class:`~lrlab.core.verdict.FamilyOptimum` as the study stored it: the vertex
of a fit in log LR over the LRs tried (two half-parabolas over five, a parabola over three), its interval, how many seeds it rests on, and,
where the best LR tried was the smallest or the largest, which way the optimum may lie.
"""

from __future__ import annotations

from lrlab.core.verdict import FamilyOptimum, StudyVerdict
from lrlab.plot.interactive import esc

__all__ = ["optima_section", "optimum_words"]


def optimum_words(o: FamilyOptimum) -> str:
    """The optimum for a table cell: the LR and its interval, or which way it is open."""
    if o.lr is None:
        return "every LR diverged"
    if not o.bracketed:
        return f"{o.best_lr:.3g} or {'higher' if o.edge == 'high' else 'lower'} (not bracketed)"
    return f"{o.lr:.3g} ({o.low:.3g}-{o.high:.3g})"


def optima_section(study: StudyVerdict) -> str:
    """The optima table (HTML), the recommendation's family first; empty for a study stored
    before the study bracketed its optima."""
    if not study.optima:
        return ""
    level = f"{study.optima[0].level:.0%}"
    mark = ' class="recommended"'
    rows = "".join(
        f"<tr{mark if o.recommended else ''}><td>{esc(o.optimizer)}</td>"
        f"<td>{esc(o.schedule)}{' (recommended)' if o.recommended else ''}</td>"
        f"<td class='num'>{esc(optimum_words(o))}</td><td class='num'>{o.seeds}</td>"
        f"<td class='num'>{len(o.tried)}{f' ({o.extra} added)' if o.extra else ''}</td><td>{esc(o.reason)}</td></tr>"
        for o in study.optima
    )
    return (
        f'<h3 id="optima">Optimum peak LR per family ({level} interval)</h3>'
        '<p class="sub">A fit in log LR over the LRs tried (two half-parabolas over five LRs, a parabola over three): bootstrapped over every seed for the '
        "recommendation's family, over one seed for the others (their interval is the grid's resolution). "
        "A family whose best LR was the smallest or largest tried after the extra LRs is not bracketed: its "
        "optimum may lie beyond.</p>"
        '<table id="optima-table"><thead><tr><th>optimizer</th><th>schedule</th><th>optimum (interval)</th>'
        f"<th>seeds</th><th>LRs tried</th><th>how</th></tr></thead><tbody>{rows}</tbody></table>"
    )
