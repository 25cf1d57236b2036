"""The run folder's contract: the names of its files.

A run folder (``runs/NAME``) is written by ``search`` and read by ``results``; both take
the file names from here, the one place they are written. ``results`` never reads the
experiment file itself (parsing it is the search's job): the search hands the final stage a
:class:`results.final.record.SearchRecord`, made by ``ExperimentConfig.record()``.
"""

from __future__ import annotations

__all__ = [
    "DATA_SUMMARY_FILE",
    "DRIVER_FILES",
    "EXPERIMENT_FILE",
    "FINAL_DIR",
    "FINAL_LOG_FILE",
    "GUARD_FILE",
    "LEADERBOARD_FILE",
    "OPTUNA_FILE",
    "TRIALS_FILE",
]

#: The experiment as the search ran it (absolute paths), written once at the start.
EXPERIMENT_FILE = "experiment.yaml"
#: One row per trial, ranked (``results.board.leaderboard``).
LEADERBOARD_FILE = "leaderboard.csv"
#: One row per trial and epoch.
TRIALS_FILE = "trials.csv"
#: The run's Optuna study (sqlite).
OPTUNA_FILE = "optuna.db"
#: What the data looked like when the search started.
DATA_SUMMARY_FILE = "data_summary.json"
#: Fingerprints that ``resume`` checks against (``search.guard``).
GUARD_FILE = "run_guard.json"
#: The final stage's folder inside the run.
FINAL_DIR = "final"
#: The final stage's progress lines, written as they happen (beside ``final/``).
FINAL_LOG_FILE = "final.log"

#: Files the search driver writes into a run (Ray Tune writes the rest).
DRIVER_FILES = (
    LEADERBOARD_FILE,
    TRIALS_FILE,
    OPTUNA_FILE,
    EXPERIMENT_FILE,
    DATA_SUMMARY_FILE,
    GUARD_FILE,
)
