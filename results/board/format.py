"""The one way a number is shown: the leaderboard table, the report, ``final``'s summary.

Metrics and probabilities get a fixed 4 decimals; seconds, epochs and counts above 1 no
trailing zeros; large counts thousands separators; missing or non-finite values a dash.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MISSING", "format_interval", "format_value"]

#: What a missing or non-finite value shows as.
MISSING = "—"


def format_value(value: Any, digits: int = 4) -> str:
    """A value as every output prints it (``digits`` decimals for metrics)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        if abs(value) >= 10_000:
            return f"{value:,.0f}"
        if abs(value) > 1:  # seconds, epochs, counts: no trailing zeros ("3.9", not "3.9000")
            return f"{value:.4g}"
        return f"{value:.{digits}f}"  # metrics and probabilities: a fixed 4 decimals
    return str(value)


def format_interval(metric: dict[str, Any], digits: int = 4) -> str:
    """``value [low, high]`` of a metric with its interval."""
    return (
        f"{format_value(metric.get('value'), digits)} "
        f"[{format_value(metric.get('low'), digits)}, {format_value(metric.get('high'), digits)}]"
    )
