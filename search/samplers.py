"""The sampler registry: Optuna samplers by the name ``search.sampler`` gives.

The names are written here once: :class:`search.config.SearchConfig` takes its valid values
from :data:`SAMPLERS`. Optuna is imported when a sampler is made, not when this loads.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from typing import Any

from pneumo_core.errors import ConfigError, UnknownNameError

__all__ = ["SAMPLERS", "make_sampler"]


def _tpe(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


def _random(seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(seed: int) -> Any:
    import optuna

    return optuna.samplers.CmaEsSampler(
        seed=seed,
        independent_sampler=optuna.samplers.TPESampler(seed=seed),
        warn_independent_sampling=False,
    )


def _qmc(seed: int) -> Any:
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def _gp(seed: int) -> Any:
    import optuna

    return optuna.samplers.GPSampler(
        seed=seed,
        independent_sampler=optuna.samplers.TPESampler(seed=seed),
        warn_independent_sampling=False,
    )


#: Sampler name -> ``seed -> optuna sampler``.
SAMPLERS: dict[str, Callable[[int], Any]] = {
    "tpe": _tpe,
    "random": _random,
    "cmaes": _cmaes,
    "qmc": _qmc,
    "gp": _gp,
}


def make_sampler(name: str, seed: int) -> Any:
    """Returns a seeded Optuna sampler.

    Raises:
        UnknownNameError: Unknown name; the message lists the valid ones.
        ConfigError: ``gp`` without PyTorch installed.
    """
    import optuna

    if name not in SAMPLERS:
        raise UnknownNameError("search.sampler", "sampler", name, SAMPLERS)
    if name == "gp" and importlib.util.find_spec("torch") is None:
        raise ConfigError(
            "search.sampler",
            "gp needs PyTorch, which is not installed: pip install 'pneumo-search[gp]' "
            "(or choose tpe, random, cmaes or qmc)",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return SAMPLERS[name](seed)
