"""Ray Tune callbacks in the driver: the live leaderboard and the compact progress table."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

from pneumo_contracts.run_folder import OPTUNA_FILE
from pneumo_contracts.status import TrialStatus
from pneumo_core.train.config import EPOCH_TIME_LIMIT, TIME_LIMIT_KEY
from results.board.leaderboard import (
    LEADERBOARD_FILE,
    TRIALS_FILE,
    TrialRecord,
    leaderboard_rows,
    merge_rows,
    parse_cell,
    read_csv_rows,
    row_params,
    trials_rows,
    write_csv_atomic,
)
from search.storage import RunLocation, run_location

__all__ = ["LeaderboardCallback", "ProgressCallback", "trial_error_message"]


def trial_error_message(trial: Any) -> str:
    """The root cause of a failed trial, in one line.

    Reads the driver-side copy of the pickled error first (written before callbacks run;
    the copy in the run folder is synced later), then the one in storage, then the text
    trace.
    """
    error = None
    local = getattr(trial, "pickled_error_file", None)
    try:
        if local and Path(local).is_file():
            import cloudpickle

            error = cloudpickle.loads(Path(local).read_bytes())
        else:
            error = trial.get_pickled_error()
    except Exception:
        error = None
    cause = getattr(error, "cause", None) or error
    if cause is not None:
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[-1] if text else ''}".strip()
    local_text = getattr(trial, "error_file", None)
    try:
        if local_text and Path(local_text).is_file():
            trace = Path(local_text).read_text().strip().splitlines()
        else:
            trace = str(trial.get_error() or "").strip().splitlines()
    except Exception:
        trace = []
    return trace[-1] if trace else "failed"


def _short_id(trial_id: str) -> str:
    return trial_id.rsplit("_", 1)[-1]


class LeaderboardCallback(Callback):
    """Keeps ``leaderboard.csv`` and ``trials.csv`` current as trials report and end.

    On :meth:`setup` (also after ``resume``) it reloads both files, so trials finished
    before a driver crash stay on the board exactly once.

    Args:
        run_dir: The run: its folder, or a :class:`RunLocation` (a run stored at a URI,
            whose files are uploaded there each time they change).
        objective: Metric name (without ``val_``).
        mode: ``max`` or ``min``.
        max_epochs: Epoch budget of a trial (tells ``max_epochs`` from ``patience``).
        resolve: Turns a trial's config (Optuna names) into configuration keys.
    """

    def __init__(
        self, run_dir: str | RunLocation, objective: str, mode: str, max_epochs: int, resolve
    ) -> None:
        self.location = run_dir if isinstance(run_dir, RunLocation) else run_location(run_dir)
        self.objective = objective
        self.mode = mode
        self.max_epochs = max_epochs
        self.resolve = resolve
        self.records: dict[str, TrialRecord] = {}

    # -- state ---------------------------------------------------------------------------

    def setup(self, **info: Any) -> None:
        """Loads what an earlier driver of this run wrote."""
        self.records = {}
        folder = self.location.local
        for row in read_csv_rows(folder / LEADERBOARD_FILE):
            record = self._record(row["trial_id"])
            record.status = row.get("status", TrialStatus.RUNNING)
            record.stop_reason = row.get("stop_reason", "")
            record.error = row.get("error", "")
            record.wall_time_s = _number(row.get("wall_time_s")) or 0.0
            record.attempts = int(_number(row.get("attempts")) or 1)
            count = _number(row.get("param_count"))
            record.param_count = int(count) if count is not None else None
            record.params = row_params(row)
        for row in read_csv_rows(folder / TRIALS_FILE):
            parsed = {  # the dotted columns are the trial's hyperparameters, not its epoch
                k: parse_cell(v)
                for k, v in row.items()
                if k != "trial_id" and "." not in k and v != ""
            }
            self._record(row["trial_id"]).add_epoch(parsed)

    def follow(self, location: RunLocation) -> None:
        """Writes into the run at ``location`` from now on.

        ``resume`` calls this on the callback Tune restored from the run's saved state,
        which still names the place the first driver had (another mirror, another machine,
        the folder before it moved).
        """
        self.location = location

    def _record(self, trial_id: str) -> TrialRecord:
        if trial_id not in self.records:
            self.records[trial_id] = TrialRecord(trial_id)
        return self.records[trial_id]

    def _update(self, trial: Any) -> TrialRecord:
        record = self._record(trial.trial_id)
        if not record.params:
            try:
                record.params = self.resolve(trial.config)
            except Exception:
                record.params = {}
        # Ray counts failed attempts; the one running now (or that ended well) is one more
        record.attempts = int(getattr(trial, "num_failures", 0)) + 1
        result = trial.last_result or {}
        if "time_total_s" in result:
            record.wall_time_s = float(result["time_total_s"])
        if "param_count" in result:
            record.param_count = int(result["param_count"])
        return record

    def write(self, *, optuna_too: bool = False) -> None:
        """Rewrites both CSV files atomically (and uploads them for a run at a URI).

        Args:
            optuna_too: Also upload the Optuna study (when a trial ended).
        """
        folder = self.location.local
        folder.mkdir(parents=True, exist_ok=True)
        rows = leaderboard_rows(self.records.values(), self.objective, self.mode)
        # under the board's lock: a row another process added is kept, none is lost
        merge_rows(folder / LEADERBOARD_FILE, rows, self.mode)
        write_csv_atomic(folder / TRIALS_FILE, trials_rows(self.records.values()))
        # the study first: a board that shows a trial ended never runs ahead of the study
        names = ([OPTUNA_FILE] if optuna_too else []) + [LEADERBOARD_FILE, TRIALS_FILE]
        self.location.upload(names)

    # -- Tune hooks ------------------------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._update(trial)
        record.status, record.error = TrialStatus.RUNNING, ""
        self.write()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        record = self._update(trial)
        row = {
            k: v for k, v in result.items() if k == "epoch" or k.startswith(("val_", "loss", "lr"))
        }
        row["epoch_seconds"] = result.get("epoch_seconds", result.get("time_this_iter_s"))
        row["time_total_s"] = result.get("time_total_s")
        row["node_id"] = result.get("node_id", "")
        row["resumed_from_epoch"] = result.get("resumed_from_epoch", 0)
        if "epoch" in row:
            record.add_epoch(row)
        self.write()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        record = self._update(trial)
        result = trial.last_result or {}
        if result.get(TIME_LIMIT_KEY):  # the cost guard cut an epoch: stopped, not done
            record.status, record.stop_reason = TrialStatus.STOPPED_EARLY, EPOCH_TIME_LIMIT
        elif result.get("trial_finished"):
            record.status = TrialStatus.COMPLETED
            record.stop_reason = (
                "max_epochs" if len(record.history) >= self.max_epochs else "patience"
            )
        else:
            record.status, record.stop_reason = TrialStatus.STOPPED_EARLY, "asha"
        self.write(optuna_too=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        record = self._update(trial)
        record.attempts = max(1, int(getattr(trial, "num_failures", 1)))  # all of them failed
        record.status = TrialStatus.FAILED
        record.error = trial_error_message(trial)
        record.stop_reason = record.error.split(":", 1)[0]
        self.write(optuna_too=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        record = self._update(trial)
        record.error = f"retrying after: {trial_error_message(trial)}"
        self.write()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Closes rows of trials Tune no longer knows (started after its last saved state,
        before a driver crash): they are failed, not left running."""
        known = {trial.trial_id for trial in trials}
        lost = [
            r
            for r in self.records.values()
            if r.status == TrialStatus.RUNNING and r.trial_id not in known
        ]
        for record in lost:
            record.status, record.stop_reason = TrialStatus.FAILED, "driver_lost"
            record.error = (
                "the search driver stopped during this trial, after Tune's last saved state; "
                "resume could not continue it"
            )
        if lost:
            self.write()


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class ProgressCallback(Callback):
    """Prints a compact live table: one line per trial event, best so far on each line.

    Args:
        objective: Metric name (without ``val_``).
        mode: ``max`` or ``min``.
        max_epochs: Epoch budget of a trial.
        describe: ``(trial config) -> short text`` naming the model.
        stream: Where to print.
    """

    HEADER = (
        f"{'time':>7}  {'trial':<6} {'status':<13} {'epoch':>5}  "
        f"{'objective':>9}  {'best':>9}  model"
    )

    def __init__(
        self, objective: str, mode: str, max_epochs: int, describe, stream: TextIO | None = None
    ):
        self.objective = objective
        self.mode = mode
        self.max_epochs = max_epochs
        self.describe = describe
        self.stream = stream
        self.best: float | None = None
        self.start = time.time()

    def setup(self, **info: Any) -> None:
        self.start = time.time()
        self._print(self.HEADER)

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)

    def _line(self, trial: Any, status: str, epoch: Any = "", value: float | None = None) -> None:
        shown = f"{value:.4f}" if value is not None and math.isfinite(value) else ""
        best = f"{self.best:.4f}" if self.best is not None else ""
        try:
            model = self.describe(trial.config)
        except Exception:
            model = "?"
        elapsed = time.time() - self.start
        self._print(
            f"{elapsed:>6.0f}s  {_short_id(trial.trial_id):<6} {status:<13} {epoch!s:>5}  "
            f"{shown:>9}  {best:>9}  {model}"
        )

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._line(trial, "started")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        value = result.get(f"val_{self.objective}")
        if value is not None and math.isfinite(value):
            better = self.best is None or (
                value > self.best if self.mode == "max" else value < self.best
            )
            if better:
                self.best = float(value)
        epoch = f"{result.get('epoch', '?')}/{self.max_epochs}"
        self._line(trial, TrialStatus.RUNNING, epoch, value)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        finished = (trial.last_result or {}).get("trial_finished")
        self._line(trial, TrialStatus.COMPLETED if finished else TrialStatus.STOPPED_EARLY)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._line(trial, TrialStatus.FAILED)
        self._print(f"{'':>7}  {_short_id(trial.trial_id)}: {trial_error_message(trial)}")
