"""What a search hands the final stage: :class:`SearchRecord`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pneumo_core.train.config import TrainConfig

__all__ = ["SearchRecord"]


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
