"""Declarative, conditional search spaces and their Optuna define-by-run form.

A space is a mapping from dotted keys of the training configuration to what each may be::

    training.learning_rate: {float: [1.0e-4, 3.0e-3], log: true}
    training.batch_size: {choice: [16, 32]}
    model.params.num_blocks: {int: [2, 5], step: 1}
    augment.horizontal_flip: false                  # a constant
    model.name:                                     # a conditional choice: each option
      choice:                                       # opens its own sub-space
        cnn: {model.params.filters: {choice: [16, 32]}}
        mobilenet: {model.params.alpha: {choice: [0.25]}, model.params.weights: imagenet}

Parameters inside an option are named ``KEY@OPTION`` in Optuna (a parameter keeps one
distribution per name), e.g. ``model.params.alpha@mobilenet``; :meth:`SearchSpace.resolve`
turns sampled names back into configuration keys. This module never imports TensorFlow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pneumo_errors import ConfigError

__all__ = ["Categorical", "Conditional", "Constant", "FloatRange", "IntRange", "SearchSpace"]

#: First part of a key that a space may set (sections of the training configuration).
SECTIONS = ("model", "augment", "training", "data", "objective", "seed")
#: Data keys a trial may change (the rest are fixed by the experiment).
SEARCHABLE_DATA_KEYS = ("image_size", "color_mode", "aspect")


@dataclass(frozen=True)
class FloatRange:
    """A float between ``low`` and ``high`` (log-uniform when ``log``)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntRange:
    """An integer between ``low`` and ``high`` inclusive, by ``step``."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True)
class Categorical:
    """One of ``choices``.

    Optuna only takes scalars as categorical choices, so a list choice (e.g. dense units
    ``[128, 64]``) is given to Optuna as its JSON text and decoded by ``resolve``.
    """

    choices: tuple[Any, ...]

    def encoded(self) -> list[Any]:
        """The choices as Optuna sees them."""
        return [_encode(c) for c in self.choices]

    def decode(self, value: Any) -> Any:
        """The choice that an Optuna value stands for."""
        for choice in self.choices:
            if _encode(choice) == value:
                return list(choice) if isinstance(choice, tuple) else choice
        return value


def _encode(choice: Any) -> Any:
    return json.dumps(list(choice)) if isinstance(choice, tuple) else choice


@dataclass(frozen=True)
class Constant:
    """A fixed value (not sampled)."""

    value: Any


@dataclass(frozen=True)
class Conditional:
    """A choice among named options, each with its own sub-space."""

    options: tuple[tuple[str, SearchSpace], ...]


Param = FloatRange | IntRange | Categorical | Constant | Conditional


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    Attributes:
        params: Configuration key -> what it may be, in definition order.
    """

    params: tuple[tuple[str, Param], ...]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, prefix: str = "space") -> SearchSpace:
        """Parses and validates a space.

        Raises:
            ConfigError: A key is not a configuration key or a value is not a valid
                parameter (empty range, log with a non-positive bound, no choices...).
                The key is named in full, e.g. ``space.training.learning_rate``.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(prefix, "a space is a mapping of configuration keys")
        params = []
        for key, spec in raw.items():
            where = f"{prefix}.{key}"
            _check_key(str(key), where)
            params.append((str(key), _parse(spec, where)))
        return cls(tuple(params))

    def define_by_run(self, trial: Any) -> dict[str, Any]:
        """Samples the space with an Optuna trial (Ray Tune's OptunaSearch calls this).

        Only ``trial.suggest_*`` calls happen here; nothing is computed.

        Args:
            trial: An ``optuna.Trial`` (or Ray's capturing wrapper of one).

        Returns:
            The constants of the branches taken, by Optuna name (the sampled values are
            captured from the trial).
        """
        return _sample(self.params, trial, "")

    def resolve(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Turns sampled values (Optuna names) into configuration keys and values.

        Args:
            sampled: Optuna parameter name -> value, constants included, as a trial's
                config holds them.

        Returns:
            Dotted configuration key -> value, for the branches taken.

        Raises:
            ConfigError: A value the space needs is missing from ``sampled``.
        """
        out: dict[str, Any] = {}
        _resolve(self.params, sampled, "", out)
        return out

    def names(self) -> list[str]:
        """Returns every Optuna parameter name the space can produce."""
        found: list[str] = []
        _collect_names(self.params, "", found)
        return found

    def distributions(self) -> dict[str, Any]:
        """Every Optuna parameter name the space can produce -> its Optuna distribution
        (constants are not parameters). Imports Optuna."""
        found: dict[str, Any] = {}
        _collect_distributions(self.params, "", found)
        return found


def _check_key(key: str, where: str) -> None:
    if "/" in key or "@" in key:
        raise ConfigError(where, "keys cannot contain '/' or '@'")
    section = key.split(".")[0]
    if section not in SECTIONS:
        raise ConfigError(where, f"not a configuration key; keys start with {', '.join(SECTIONS)}")
    if section == "data" and key.split(".", 1)[-1] not in SEARCHABLE_DATA_KEYS:
        searchable = ", ".join(f"data.{k}" for k in SEARCHABLE_DATA_KEYS)
        raise ConfigError(where, f"only {searchable} can be searched")


def _parse(spec: Any, where: str) -> Param:
    if not isinstance(spec, Mapping):
        return Constant(tuple(spec) if isinstance(spec, list) else spec)
    kinds = [k for k in ("float", "int", "choice", "value") if k in spec]
    if len(kinds) != 1:
        raise ConfigError(where, "give exactly one of float: [low, high], int: [low, high], "
                          "choice: [...] or {option: sub-space}, value: X")  # fmt: skip
    kind = kinds[0]
    extra = set(spec) - {kind, "log", "step"}
    if extra or (kind in ("choice", "value") and set(spec) - {kind}):
        bad = sorted(extra or set(spec) - {kind})[0]
        raise ConfigError(f"{where}.{bad}", f"unknown key for a {kind} parameter")
    if kind == "value":
        return Constant(spec["value"])
    if kind == "choice":
        choices = spec["choice"]
        if isinstance(choices, Mapping):
            if not choices:
                raise ConfigError(where, "choice needs at least one option")
            options = []
            for name, sub in choices.items():
                sub_where = f"{where}.{name}"
                if "/" in str(name) or "@" in str(name) or "." in str(name):
                    raise ConfigError(sub_where, "option names cannot contain '/', '@' or '.'")
                options.append((str(name), SearchSpace.from_dict(sub or {}, prefix=sub_where)))
            return Conditional(tuple(options))
        if not isinstance(choices, list) or not choices:
            raise ConfigError(where, "choice needs a non-empty list (or a mapping of options)")
        for value in choices:
            if not (value is None or isinstance(value, (bool, int, float, str, list))):
                raise ConfigError(where, f"choice values must be scalars or lists, got {value!r}")
        return Categorical(tuple(tuple(v) if isinstance(v, list) else v for v in choices))
    bounds = spec[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ConfigError(where, f"{kind} needs [low, high]")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log", "must be true or false")
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ConfigError(where, f"{kind} bounds must be numbers, got {bounds}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(where, f"impossible range [{bounds[0]}, {bounds[1]}]: low must be < high")
    if log and low <= 0:
        raise ConfigError(where, "a log range needs low > 0")
    if kind == "float":
        if "step" in spec:
            raise ConfigError(f"{where}.step", "step is for int parameters")
        return FloatRange(low, high, log)
    if not (low.is_integer() and high.is_integer()):
        raise ConfigError(where, f"int bounds must be integers, got {bounds}")
    step = spec.get("step", 1)
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise ConfigError(f"{where}.step", "must be an integer >= 1")
    if log and step != 1:
        raise ConfigError(f"{where}.step", "a log int range needs step 1")
    return IntRange(int(low), int(high), step, log)


def _name(key: str, scope: str) -> str:
    return f"{key}@{scope}" if scope else key


def _sample(params, trial: Any, scope: str) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for key, param in params:
        name = _name(key, scope)
        if isinstance(param, FloatRange):
            trial.suggest_float(name, param.low, param.high, log=param.log)
        elif isinstance(param, IntRange):
            trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
        elif isinstance(param, Categorical):
            trial.suggest_categorical(name, param.encoded())
        elif isinstance(param, Constant):
            constants[name] = param.value
        else:
            option = trial.suggest_categorical(name, [o for o, _ in param.options])
            sub = dict(param.options)[option]
            constants.update(_sample(sub.params, trial, f"{scope}.{option}" if scope else option))
    return constants


def _resolve(params, sampled: Mapping[str, Any], scope: str, out: dict[str, Any]) -> None:
    for key, param in params:
        name = _name(key, scope)
        if name not in sampled:
            raise ConfigError(name, "missing from the trial's parameters")
        value = sampled[name]
        if isinstance(param, Categorical):
            value = param.decode(value)
        out[key] = list(value) if isinstance(value, tuple) else value
        if isinstance(param, Conditional):
            sub = dict(param.options)[value]
            _resolve(sub.params, sampled, f"{scope}.{value}" if scope else str(value), out)


def _collect_names(params, scope: str, found: list[str]) -> None:
    for key, param in params:
        found.append(_name(key, scope))
        if isinstance(param, Conditional):
            for option, sub in param.options:
                _collect_names(sub.params, f"{scope}.{option}" if scope else option, found)


def _collect_distributions(params, scope: str, found: dict[str, Any]) -> None:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    for key, param in params:
        name = _name(key, scope)
        if isinstance(param, FloatRange):
            found[name] = FloatDistribution(param.low, param.high, log=param.log)
        elif isinstance(param, IntRange):
            found[name] = IntDistribution(param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, Categorical):
            found[name] = CategoricalDistribution(param.encoded())
        elif isinstance(param, Conditional):
            found[name] = CategoricalDistribution([o for o, _ in param.options])
            for option, sub in param.options:
                inner = f"{scope}.{option}" if scope else option
                _collect_distributions(sub.params, inner, found)
