"""An experiment's search space: the context the shipped spaces get, built and checked.

``spaces`` knows nothing of the models' code; this module (in ``search``, above both)
answers the question a shipped space asks, "are ImageNet weights for this backbone usable
here?", from the model registry and the experiment's weights folders.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pneumo_core.models import get_model_spec
from pneumo_core.models.weights import WeightsConfig, find_weights
from pneumo_errors import ConfigError
from search.config import ExperimentConfig, load_experiment
from spaces import SearchSpace, SpaceContext, build_space

__all__ = ["PretrainedWeights", "prepare_experiment", "space_context", "validate_space"]


class PretrainedWeights:
    """``(model, params) -> bool``: whether a backbone's ImageNet weights are usable here.

    Picklable (a plain object, not a closure), so a space context can travel.

    Args:
        weights: Where weight files are looked for, and whether downloads are allowed.
        image_size: The input size the weight files are named for.
    """

    def __init__(self, weights: WeightsConfig, image_size: int) -> None:
        self.weights = weights
        self.image_size = image_size

    def __call__(self, model: str, params: Mapping[str, Any]) -> bool:
        if self.weights.allow_download:
            return True
        spec = get_model_spec(model)
        if spec.weight_files is None:
            return False
        files = spec.weight_files(spec.params_class(**params), self.image_size)
        return find_weights(files, self.weights) is not None


def space_context(weights: WeightsConfig, image_size: int) -> SpaceContext:
    """The :class:`~spaces.SpaceContext` for weights found through ``weights``."""
    return SpaceContext(
        image_size=image_size, has_pretrained=PretrainedWeights(weights, image_size)
    )


def experiment_space(config: ExperimentConfig) -> SearchSpace:
    """Builds ``config``'s search space (a shipped name or an inline mapping)."""
    return build_space(config.space, space_context(config.weights, config.data.image_size))


def validate_space(config: ExperimentConfig, space: SearchSpace, samples: int = 24) -> None:
    """Samples the space a few times and builds each trial's configuration.

    Catches keys that do not exist and values the configuration refuses before anything is
    launched.

    Raises:
        ConfigError: Naming the space key at fault.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(samples):
        trial = study.ask()
        constants = space.define_by_run(trial)
        values = space.resolve({**trial.params, **constants})
        try:
            config.trial_config(values, seed=0)
        except ConfigError as exc:
            raise ConfigError(f"space ({exc.key})", exc.message) from None
        study.tell(trial, 0.0)


def prepare_experiment(
    path: str | Path, overrides: dict[str, Any] | None = None, *, samples: int = 24
) -> tuple[ExperimentConfig, SearchSpace]:
    """Loads an experiment file, builds its space and checks ``samples`` draws of it.

    Args:
        path: The experiment file.
        overrides: Nested values replacing the file's.
        samples: Draws of the space checked as training configurations.

    Returns:
        The experiment (paths made absolute) and its search space.

    Raises:
        ConfigError: A bad file, key or space, named.
    """
    config = load_experiment(path, overrides).with_absolute_paths()
    space = experiment_space(config)
    validate_space(config, space, samples=samples)
    return config, space
