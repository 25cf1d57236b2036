"""One trial-status enum for training, the leaderboard and the search driver.

Members are ``str`` values, so they compare equal to the spellings written in CSV files
and reports and are written as those spellings.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TrialStatus"]


class TrialStatus(str, Enum):
    """How a trial (or one training run) stands or ended.

    The leaderboard's ``status`` column takes ``running``, ``completed``,
    ``stopped_early`` or ``failed``; why a trial stopped early (``asha``,
    ``time_budget``, ``epoch_time_limit``, ``nan_loss``...) is its ``stop_reason``.
    A training run (:func:`pneumo_core.train.loop.train_model`) ends ``completed``,
    ``stopped_early`` (early stopping), ``nan_loss`` or ``epoch_time_limit``.
    """

    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED_EARLY = "stopped_early"
    FAILED = "failed"
    NAN_LOSS = "nan_loss"
    EPOCH_TIME_LIMIT = "epoch_time_limit"

    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:  # as its value, so dicts keyed by the CSV's strings find it
        return str.__hash__(self)

    @classmethod
    def board_values(cls) -> tuple[str, ...]:
        """The values the leaderboard's ``status`` column may hold."""
        return (cls.COMPLETED, cls.STOPPED_EARLY, cls.FAILED, cls.RUNNING)
