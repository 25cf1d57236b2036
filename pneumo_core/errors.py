"""The errors of pneumo-search, as :mod:`pneumo_errors` defines them (re-exported here).

They live in :mod:`pneumo_errors`, below every package, so that ``spaces`` can raise
:class:`ConfigError` without importing ``pneumo_core``.
"""

from __future__ import annotations

from pneumo_errors import (
    CheckpointError,
    ConfigError,
    DataError,
    MetricError,
    PneumoError,
    TrainingError,
    UnknownNameError,
    WeightsNotFoundError,
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "MetricError",
    "PneumoError",
    "TrainingError",
    "UnknownNameError",
    "WeightsNotFoundError",
]
