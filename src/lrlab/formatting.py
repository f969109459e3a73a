"""The one number formatter for tables, messages and labels (pure; imports nothing of lrlab).

>>> num(0.123456), num(None), num(float("inf")), num(float("nan")), num(3e-05, digits=3)
('0.1235', '-', 'inf', 'nan', '3e-05')
>>> pct(0.98889), pct(None)
('98.89%', '-')
"""

from __future__ import annotations

import math

__all__ = ["num", "pct", "round_sig"]


def num(value: float | int | None, digits: int = 4, missing: str = "-") -> str:
    """``value`` in ``digits`` significant digits (``g`` form); ``missing`` for None."""
    if value is None:
        return missing
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def pct(value: float | None, digits: int = 2, missing: str = "-") -> str:
    """A fraction as a percentage with ``digits`` decimals."""
    return missing if value is None else f"{value:.{digits}%}"


def round_sig(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits, as a float (readable in specs)."""
    return float(f"{value:.{digits}g}")
