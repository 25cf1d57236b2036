"""The leaderboard of a search: one row per trial, ranked by the objective.

``leaderboard.csv`` columns: ``rank``, ``trial_id``, ``status`` (``completed``,
``stopped_early``, ``failed``, ``running``), ``stop_reason``, the ``objective`` value,
``objective_low`` and ``objective_high`` (its 95% bootstrap interval on validation at that
epoch), ``tied_with_best`` (``yes`` when the objective lies inside the best trial's
interval: a tie within noise) and every validation metric at the trial's best epoch (with a
family-out objective: their mean over the folds, and ``family_<family>_<metric>`` for each
held-out family), ``best_epoch``, ``epochs_run``, ``wall_time_s``, ``median_epoch_s`` (the
median wall time of its epochs: what a retraining costs per epoch), ``param_count``,
``attempts`` (1 + retries), ``error``, ``node_id`` (the Ray node of its last epoch), then
every hyperparameter as its own column (dotted configuration keys such as
``training.learning_rate``). ``trials.csv`` holds one row per trial and epoch. Both are
rewritten atomically (write a temporary file, rename), so a reader never sees a half-written
file; leaderboard updates read, merge and write under a lock file
(``.leaderboard.csv.lock``), so several writing processes lose no row.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import statistics
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pneumo_contracts.run_folder import LEADERBOARD_FILE, TRIALS_FILE
from pneumo_contracts.status import TrialStatus
from pneumo_core.metrics import METRICS

__all__ = [
    "LEADERBOARD_FILE",
    "TRIALS_FILE",
    "TrialRecord",
    "csv_text",
    "is_finite",
    "leaderboard_rows",
    "locked",
    "median_epoch_seconds",
    "merge_rows",
    "param_cells",
    "parse_cell",
    "rank_rows",
    "read_csv_rows",
    "row_params",
    "trials_rows",
    "typed_row",
    "write_csv_atomic",
]

STATUSES = TrialStatus.board_values()
METRIC_NAMES = list(METRICS)


@dataclass
class TrialRecord:
    """What the driver knows of one trial.

    Attributes:
        trial_id: Ray Tune's trial id.
        params: Hyperparameters (dotted configuration keys -> values).
        status: One of :data:`STATUSES`.
        stop_reason: ``max_epochs``, ``patience`` (Keras early stopping), ``asha``,
            ``epoch_time_limit`` (an epoch ran past ``search.max_epoch_s``), or the kind of
            failure.
        error: Error message of a failed trial.
        history: One row per epoch (``epoch``, ``loss``, ``val_<metric>``...).
        param_count: Model parameters.
        wall_time_s: Wall time of the trial so far.
        attempts: Times the trial was started (1 + retries after failures).
    """

    trial_id: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = TrialStatus.RUNNING
    stop_reason: str = ""
    error: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    param_count: int | None = None
    wall_time_s: float = 0.0
    attempts: int = 1

    def add_epoch(self, row: dict[str, Any]) -> None:
        """Adds (or replaces, after a retry) the row of one epoch."""
        epoch = int(row["epoch"])
        self.history = [r for r in self.history if int(r["epoch"]) != epoch] + [row]
        self.history.sort(key=lambda r: int(r["epoch"]))

    def best_row(self, objective: str, mode: str) -> dict[str, Any] | None:
        """The history row of the best epoch by ``objective`` (NaN never wins)."""
        key = f"val_{objective}"
        scored = [r for r in self.history if is_finite(r.get(key))]
        if not scored:
            return None
        sign = 1.0 if mode == "max" else -1.0
        return max(scored, key=lambda r: (sign * float(r[key]), -int(r["epoch"])))


def is_finite(value: Any) -> bool:
    """Whether a value (number or CSV text) is a finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def leaderboard_rows(
    records: Iterable[TrialRecord], objective: str, mode: str
) -> list[dict[str, Any]]:
    """Ranks trials by their best objective value.

    Trials without a finite objective (failed before an epoch, NaN) come last, unranked.
    Ties keep trial-id order, so the ranking is deterministic.

    Returns:
        Leaderboard rows, best first.
    """
    rows = []
    for record in records:
        best = record.best_row(objective, mode)
        row: dict[str, Any] = {
            "rank": "",
            "trial_id": record.trial_id,
            "status": record.status,
            "stop_reason": record.stop_reason,
            "objective": best[f"val_{objective}"] if best else math.nan,
            "objective_low": (best or {}).get(f"val_{objective}_low", math.nan),
            "objective_high": (best or {}).get(f"val_{objective}_high", math.nan),
            "tied_with_best": "",
        }
        for name in METRIC_NAMES:
            row[name] = best.get(f"val_{name}", math.nan) if best else math.nan
        # a family-out objective: each held-out family's score at that epoch
        row.update({k[4:]: v for k, v in (best or {}).items() if k.startswith("val_family_")})
        row["best_epoch"] = int(best["epoch"]) if best else 0
        row["epochs_run"] = len(record.history)
        row["wall_time_s"] = round(record.wall_time_s, 2)
        row["median_epoch_s"] = median_epoch_seconds(record.history)
        row["param_count"] = record.param_count if record.param_count is not None else ""
        row["attempts"] = record.attempts
        row["error"] = record.error
        row["node_id"] = record.history[-1].get("node_id", "") if record.history else ""
        row.update(param_cells(record.params))
        rows.append(row)
    return rank_rows(rows, mode)


def median_epoch_seconds(history: list[dict[str, Any]]) -> float | str:
    """The median wall time of a trial's epochs, in seconds ("" when none was timed)."""
    seconds = [float(r["epoch_seconds"]) for r in history if is_finite(r.get("epoch_seconds"))]
    return round(statistics.median(seconds), 1) if seconds else ""


def param_cells(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameters as CSV cells (lists and mappings as JSON), sorted by key."""
    return {
        key: json.dumps(value) if isinstance(value, (list, dict)) else value
        for key, value in sorted(params.items())
    }


def trials_rows(records: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    """``trials.csv``'s rows: one per trial and epoch, each with the trial's hyperparameters
    (so the file reads without a join on the leaderboard)."""
    return [
        {"trial_id": r.trial_id, **row, **param_cells(r.params)}
        for r in sorted(records, key=lambda r: r.trial_id)
        for row in r.history
    ]


#: Leaderboard columns that hold text even when it looks like a number.
TEXT_COLUMNS = ("trial_id", "status", "stop_reason", "error", "node_id")


def typed_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row with numbers as numbers, lists as lists, and ``None`` for empty or NaN."""
    typed: dict[str, Any] = {}
    for key, text in row.items():
        if key in TEXT_COLUMNS:
            typed[key] = text
            continue
        value = parse_cell(text) if text not in ("", None) else None
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        typed[key] = value
    return typed


def rank_rows(rows: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Sorts leaderboard rows best first and numbers the ranks, in place.

    Rows whose objective is not a finite number (NaN, inf, empty: failed or diverged
    trials) come last and get no rank. Ties, and the unranked rows among themselves, keep
    trial-id order, so the same rows always give the same board whatever their order.

    Args:
        rows: Leaderboard rows (values as numbers or as CSV text).
        mode: ``max`` or ``min``.

    Returns:
        ``rows``, sorted.
    """
    sign = -1.0 if mode == "max" else 1.0

    def order(row: dict[str, Any]) -> tuple:
        value = row["objective"]
        good = is_finite(value)
        return (0 if good else 1, sign * float(value) if good else 0.0, str(row["trial_id"]))

    rows.sort(key=order)
    rank = 0
    for row in rows:
        row["rank"] = ""
        if is_finite(row["objective"]):
            rank += 1
            row["rank"] = rank
    mark_ties(rows, mode)
    return rows


def mark_ties(rows: list[dict[str, Any]], mode: str) -> None:
    """Sets ``tied_with_best`` on ranked rows, in place: ``yes`` where the objective lies
    inside the best trial's validation interval (the difference is within the noise of
    the validation split), ``no`` outside it, empty when the best has no interval.

    Args:
        rows: Ranked rows, best first (:func:`rank_rows`).
        mode: ``max`` or ``min``.
    """
    ranked = [row for row in rows if row.get("rank") not in ("", None)]
    for row in rows:
        row["tied_with_best"] = ""
    if not ranked:
        return
    bound = ranked[0].get("objective_low" if mode == "max" else "objective_high")
    if not is_finite(bound):
        return
    for row in ranked:
        value = float(row["objective"])
        inside = value >= float(bound) if mode == "max" else value <= float(bound)
        row["tied_with_best"] = "yes" if inside else "no"


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (through ``PATH.lock``) across processes.

    Readers need no lock: files are replaced atomically. Writers that read, change and
    write back take this lock so that no update is lost.
    """
    path = Path(path)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def merge_rows(path: str | Path, rows: Iterable[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Adds or replaces rows (by ``trial_id``) in a leaderboard file, re-ranked, atomically.

    Safe with several writer processes at once: each update happens under :func:`locked`,
    and the file is replaced by a rename, so a reader always sees a complete board.

    Args:
        path: ``leaderboard.csv`` (created if missing).
        rows: Rows to add; a row replaces the file's row of the same trial.
        mode: ``max`` or ``min`` (the objective's direction).

    Returns:
        The board as written.
    """
    with locked(path):
        board = {row["trial_id"]: dict(row) for row in read_csv_rows(path)}
        for row in rows:
            board[str(row["trial_id"])] = dict(row)
        ranked = rank_rows(list(board.values()), mode)
        write_csv_atomic(path, ranked)
    return ranked


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV text; columns are the union of the rows' keys, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv_atomic(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Writes rows as CSV (:func:`csv_text`) via a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(csv_text(rows))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    """Reads a CSV written by :func:`write_csv_atomic` (empty list if missing)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def parse_cell(text: str) -> Any:
    """Reads back a value written to a CSV cell (numbers, JSON lists, booleans, text)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    if text in ("True", "False"):
        return text == "True"
    if text == "nan":
        return math.nan
    return text


def row_params(row: dict[str, str]) -> dict[str, Any]:
    """The hyperparameters of a leaderboard row: its dotted columns that hold a value."""
    return {k: parse_cell(v) for k, v in row.items() if "." in k and v not in ("", None)}
