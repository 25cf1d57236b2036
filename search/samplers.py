"""The sampler registry: Optuna samplers by the name ``search.sampler`` gives.

The names are written here once: :class:`search.config.SearchConfig` takes its valid values
from :data:`SAMPLERS`. Optuna is imported when a sampler is made, not when this loads.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pneumo_errors import ConfigError, UnknownNameError

__all__ = ["SAMPLERS", "SamplerOptions", "make_sampler"]


@dataclass(frozen=True)
class SamplerOptions:
    """How a model-based sampler treats the start of a search and pending trials.

    Attributes:
        startup_trials: Trials drawn at random before the model takes over (TPE, CMA-ES
            and GP; random and QMC ignore it); None: the sampler's own default (10 for
            TPE and GP, 1 for CMA-ES).
        constant_liar: TPE only: trials still running count as if they had scored the
            worst value so far, so trials asked at the same time spread out instead of
            landing on one spot (Optuna's ``constant_liar``).
    """

    startup_trials: int | None = None
    constant_liar: bool = False

    def startup(self) -> dict[str, int]:
        """``n_startup_trials`` for a sampler's constructor, when one is set."""
        return {} if self.startup_trials is None else {"n_startup_trials": self.startup_trials}


def _tpe(seed: int, options: SamplerOptions) -> Any:
    import optuna

    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        group=True,
        constant_liar=options.constant_liar,
        **options.startup(),
    )


def _random(seed: int, options: SamplerOptions) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(seed: int, options: SamplerOptions) -> Any:
    import optuna

    return optuna.samplers.CmaEsSampler(
        seed=seed,
        **options.startup(),
        independent_sampler=optuna.samplers.TPESampler(seed=seed),
        warn_independent_sampling=False,
    )


def _qmc(seed: int, options: SamplerOptions) -> Any:
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def _gp(seed: int, options: SamplerOptions) -> Any:
    import optuna

    return optuna.samplers.GPSampler(
        seed=seed,
        **options.startup(),
        independent_sampler=optuna.samplers.TPESampler(seed=seed),
        warn_independent_sampling=False,
    )


#: Sampler name -> ``seed -> optuna sampler``.
SAMPLERS: dict[str, Callable[[int, SamplerOptions], Any]] = {
    "tpe": _tpe,
    "random": _random,
    "cmaes": _cmaes,
    "qmc": _qmc,
    "gp": _gp,
}


def make_sampler(name: str, seed: int, options: SamplerOptions | None = None) -> Any:
    """Returns a seeded Optuna sampler.

    Args:
        name: A name of :data:`SAMPLERS`.
        seed: The sampler's seed.
        options: Start-up trials and pending-trial handling (default: Optuna's defaults).

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
        return SAMPLERS[name](seed, options or SamplerOptions())
