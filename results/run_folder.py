"""The run folder's contract: the names of its files, and what a search hands the final stage.

A run folder (``runs/NAME``) is written by ``search`` and read by ``results``; both take
the file names from here, the one place they are written. ``results`` never reads the
experiment file itself (parsing it is the search's job): the search hands the final stage a
:class:`SearchRecord`, made by ``ExperimentConfig.record()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pneumo_core.train.config import TrainConfig

__all__ = [
    "DATA_SUMMARY_FILE",
    "DRIVER_FILES",
    "EXPERIMENT_FILE",
    "FINAL_DIR",
    "GUARD_FILE",
    "LEADERBOARD_FILE",
    "OPTUNA_FILE",
    "TRIALS_FILE",
    "SearchRecord",
]

#: The experiment as the search ran it (absolute paths), written once at the start.
EXPERIMENT_FILE = "experiment.yaml"
#: One row per trial, ranked (``results.leaderboard``).
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

#: Files the search driver writes into a run (Ray Tune writes the rest).
DRIVER_FILES = (
    LEADERBOARD_FILE,
    TRIALS_FILE,
    OPTUNA_FILE,
    EXPERIMENT_FILE,
    DATA_SUMMARY_FILE,
    GUARD_FILE,
)


@dataclass(frozen=True)
class SearchRecord:
    """What the final stage needs of a search, handed over by the search.

    Attributes:
        name: The experiment's name.
        seed: The search's seed (retraining seeds start there; the report's bootstrap uses it).
        base: The training configuration every trial started from (the trials' epoch
            budget, seed ``seed``).
        experiment: The experiment as plain values (shown in the report).
    """

    name: str
    seed: int
    base: TrainConfig
    experiment: dict[str, Any] = field(default_factory=dict)

    def trial_config(self, values: dict[str, Any], seed: int) -> TrainConfig:
        """A trial's training configuration: ``base`` with ``values`` in place.

        Raises:
            ConfigError: A value is invalid for its key.
        """
        return self.base.with_values(values, seed)
