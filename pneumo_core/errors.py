"""Errors meant for users: each names the file, key or value at fault."""

from __future__ import annotations


class PneumoError(Exception):
    """Base class of every error the CLI reports as one line instead of a traceback."""


class ConfigError(PneumoError, ValueError):
    """A configuration key is unknown, wrongly typed or out of range.

    Args:
        key: Dotted path of the key at fault (``data.image_size``); empty for the whole file.
        message: What is wrong and what would be valid.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)

    def __reduce__(self):  # picklable across processes (Ray ships trial errors)
        return (type(self), (self.key, self.message))

    def under(self, prefix: str) -> ConfigError:
        """Returns the same error with ``prefix`` prepended to its key."""
        if not prefix:
            return self
        return ConfigError(f"{prefix}.{self.key}" if self.key else prefix, self.message)


class DataError(PneumoError):
    """The image data is missing, empty, unreadable or leaks patients between splits."""


class WeightsNotFoundError(PneumoError):
    """Pretrained weights are not on disk and downloads are not allowed."""


class MetricError(PneumoError, ValueError):
    """A metric cannot be computed from the given labels and scores."""


class TrainingError(PneumoError):
    """Training could not start or could not go on (for instance, the loss became NaN)."""


class CheckpointError(PneumoError):
    """A training checkpoint is incomplete or damaged (its files do not match its manifest)."""
