"""Showing a run's leaderboard as a table, CSV or JSON (``pneumo-search leaderboard``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from pneumo_errors import PneumoError
from results.board.leaderboard import LEADERBOARD_FILE, read_csv_rows, typed_row

__all__ = ["render_leaderboard"]

TABLE_COLUMNS = (
    "rank", "trial_id", "status", "objective", "objective_low", "objective_high",
    "tied_with_best", "auc", "sensitivity", "specificity",
    "best_epoch", "epochs_run", "wall_time_s", "model.name",
)  # fmt: skip


def render_leaderboard(
    run_dir: str | Path, *, top: int = 10, sort: str | None = None, fmt: str = "table"
) -> str:
    """Returns the leaderboard of ``run_dir`` as text.

    Args:
        run_dir: Run folder holding ``leaderboard.csv``.
        top: Rows to keep (0 = all).
        sort: Column to sort by instead of the ranking (numbers descending, text ascending).
        fmt: ``table``, ``csv`` or ``json``.

    Raises:
        PneumoError: No leaderboard there, or an unknown sort column.
    """
    path = Path(run_dir) / LEADERBOARD_FILE
    rows = read_csv_rows(path)
    if not path.is_file():
        raise PneumoError(f"{path}: no leaderboard (is {run_dir} a run folder?)")
    if sort:
        if rows and sort not in rows[0]:
            raise PneumoError(f"unknown column {sort!r}; valid: {', '.join(rows[0])}")
        rows.sort(key=lambda r: _sort_key(r.get(sort, "")))
    if top:
        rows = rows[:top]
    if fmt == "json":  # numbers as numbers, null for missing or NaN
        return json.dumps([typed_row(r) for r in rows], indent=2, allow_nan=False)
    if fmt == "csv":
        if not rows:
            return ""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    columns = [c for c in TABLE_COLUMNS if not rows or c in rows[0]]
    cells = [[_short(c, r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


FLOAT_COLUMNS = {
    "objective",
    "objective_low",
    "objective_high",
    "auc",
    "sensitivity",
    "specificity",
    "wall_time_s",
}


def _sort_key(value: str):
    try:
        return (0, -float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _short(column: str, value: str) -> str:
    if column not in FLOAT_COLUMNS:
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if value.isdigit():
        return value
    return f"{number:.4f}"
