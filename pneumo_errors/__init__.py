"""Errors meant for users: each names the file, key or value at fault.

The one module every package may import (it imports none of them): ``spaces`` raises
:class:`ConfigError` without knowing ``pneumo_core``, and every registry (models, spaces,
samplers, metrics) raises :class:`UnknownNameError` for a name it does not hold.
"""

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


class UnknownNameError(ConfigError, KeyError):
    """A registry (models, spaces, samplers, metrics) holds no entry of that name.

    A :class:`ConfigError` naming the key and listing the valid names; also a
    ``KeyError``, as a lookup that failed.

    Args:
        key: Dotted path of the key at fault (``model.name``, ``search.sampler``).
        kind: What the registry holds (``model``, ``space``, ``sampler``, ``metric``).
        name: The name asked for.
        valid: The names the registry holds.
    """

    def __init__(self, key: str, kind: str, name: object, valid) -> None:
        self.kind, self.name, self.valid = kind, name, tuple(valid)
        super().__init__(key, f"unknown {kind} {name!r}; valid: {', '.join(self.valid)}")

    def __reduce__(self):
        return (type(self), (self.key, self.kind, self.name, self.valid))

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return Exception.__str__(self)

    def under(self, prefix: str) -> ConfigError:
        """Returns the same error with ``prefix`` prepended to its key."""
        if not prefix:
            return self
        return UnknownNameError(
            f"{prefix}.{self.key}" if self.key else prefix, self.kind, self.name, self.valid
        )


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
