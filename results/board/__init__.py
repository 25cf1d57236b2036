"""The leaderboard room: typed trial rows, ranking and ties, the locked CSV writer, and what
reads a board (the ``leaderboard`` command's view, the report's search summary).

Imports no other room of :mod:`results`.
"""

from __future__ import annotations

from results.board.leaderboard import (
    TrialRecord,
    leaderboard_rows,
    merge_rows,
    parse_cell,
    read_csv_rows,
    row_params,
    typed_row,
    write_csv_atomic,
)
from results.board.summary import summarize_search
from results.board.view import render_leaderboard

__all__ = [
    "TrialRecord",
    "leaderboard_rows",
    "merge_rows",
    "parse_cell",
    "read_csv_rows",
    "render_leaderboard",
    "row_params",
    "summarize_search",
    "typed_row",
    "write_csv_atomic",
]
