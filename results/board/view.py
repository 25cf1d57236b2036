"""Showing a run's leaderboard as a table, CSV or JSON (``pneumo-search leaderboard``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pneumo_errors import PneumoError
from results.board.format import format_value
from results.board.leaderboard import LEADERBOARD_FILE, typed_row

__all__ = ["read_leaderboard", "render_leaderboard", "select_rows"]

TABLE_COLUMNS = (
    "rank", "trial_id", "status", "objective", "objective_low", "objective_high",
    "tied_with_best", "auc", "sensitivity", "specificity",
    "best_epoch", "epochs_run", "wall_time_s", "model.name",
)  # fmt: skip


def read_leaderboard(path: str | Path) -> pd.DataFrame:
    """A leaderboard CSV as a pandas frame of its cells as written (text; empty: "").

    Raises:
        PneumoError: No leaderboard at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise PneumoError(f"{path}: no leaderboard (is {path.parent} a run folder?)")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def select_rows(
    frame: pd.DataFrame, *, where: Sequence[str] = (), sort: str | None = None, top: int = 0
) -> pd.DataFrame:
    """The rows matching every ``COLUMN=VALUE`` of ``where``, sorted by ``sort`` (numbers
    descending first, then text ascending; the ranking when None), the first ``top`` (0: all).

    Raises:
        PneumoError: An unknown column, or a ``where`` item without ``=``.
    """
    for item in where:
        column, equals, value = item.partition("=")
        if not equals:
            raise PneumoError(f"--where {item!r}: expected COLUMN=VALUE")
        _require_column(frame, column)
        frame = frame[frame[column] == value]
    if sort:
        _require_column(frame, sort)
        numbers = pd.to_numeric(frame[sort], errors="coerce")
        keys = pd.DataFrame({"text": numbers.isna(), "number": -numbers, "value": frame[sort]})
        frame = frame.loc[keys.sort_values(["text", "number", "value"], kind="stable").index]
    return frame.head(top) if top else frame


def render_leaderboard(
    run_dir: str | Path,
    *,
    top: int = 10,
    sort: str | None = None,
    fmt: str = "table",
    where: Sequence[str] = (),
) -> str:
    """Returns the leaderboard of ``run_dir`` as text.

    Args:
        run_dir: Run folder holding ``leaderboard.csv``.
        top: Rows to keep (0 = all).
        sort: Column to sort by instead of the ranking (numbers descending, text ascending).
        fmt: ``table``, ``csv`` or ``json``.
        where: ``COLUMN=VALUE`` filters, all of which a row must match.

    Raises:
        PneumoError: No leaderboard there, or an unknown column.
    """
    frame = select_rows(
        read_leaderboard(Path(run_dir) / LEADERBOARD_FILE), where=where, sort=sort, top=top
    )
    rows = frame.to_dict("records")
    if fmt == "json":  # numbers as numbers, null for missing or NaN
        return json.dumps([typed_row(r) for r in rows], indent=2, allow_nan=False)
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n").rstrip("\n") if rows else ""
    columns = [c for c in TABLE_COLUMNS if c in frame.columns]
    cells = [[_short(c, r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _require_column(frame: pd.DataFrame, column: str) -> None:
    if column not in frame.columns:
        raise PneumoError(f"unknown column {column!r}; valid: {', '.join(frame.columns)}")


FLOAT_COLUMNS = {
    "objective",
    "objective_low",
    "objective_high",
    "auc",
    "sensitivity",
    "specificity",
    "wall_time_s",
}


def _short(column: str, value: str) -> str:
    if column not in FLOAT_COLUMNS:
        return value
    try:
        return format_value(float(value))
    except ValueError:
        return value
