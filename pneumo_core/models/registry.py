"""The model registry: ``@register_model``, :func:`create_model`, :func:`list_models`.

A registered model is a factory plus a frozen dataclass of its hyperparameters, so that
parameters are validated (unknown keys are errors) before TensorFlow is touched. This
module imports no TensorFlow; factories import Keras when they build. It imports none of
the models either: the built-ins register when :mod:`pneumo_core.models` imports
:mod:`~pneumo_core.models.cnn` and :mod:`~pneumo_core.models.transfer` (a new family goes
in its own module, imported there the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pneumo_core.configuration import from_dict
from pneumo_errors import ConfigError, UnknownNameError

__all__ = [
    "ModelSpec",
    "create_model",
    "get_model_spec",
    "list_models",
    "model_params",
    "register_model",
]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model family.

    Attributes:
        name: Registry name (``cnn``, ``mobilenet``, ...).
        params_class: Frozen dataclass of its hyperparameters.
        build: ``build(params, input_shape, num_classes, weights) -> keras.Model``.
        family: ``cnn`` or ``transfer``.
        weight_files: For pretrained backbones, ``(params, image_size) -> file names`` that
            Keras uses for the ImageNet weights, best first; ``None`` otherwise.
    """

    name: str
    params_class: type
    build: Callable[..., Any]
    family: str
    weight_files: Callable[[Any, int], list[str]] | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    params_class: type,
    *,
    family: str,
    weight_files: Callable[[Any, int], list[str]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a model factory under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(name, params_class, build, family, weight_files)
        return build

    return decorator


def list_models(family: str | None = None) -> list[str]:
    """Returns the registered model names (optionally of one family), sorted."""
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def get_model_spec(name: str) -> ModelSpec:
    """Returns the spec of a registered model.

    Raises:
        UnknownNameError: Unknown name; the message lists the valid ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("model.name", "model", name, list_models()) from None


def model_params(name: str, params: Mapping[str, Any] | None) -> Any:
    """Validates ``params`` for model ``name`` and returns its params dataclass.

    Raises:
        ConfigError: Unknown model, unknown key or bad value (named ``model.params.KEY``).
    """
    spec = get_model_spec(name)
    if isinstance(params, spec.params_class):
        return params
    return from_dict(spec.params_class, params or {}, prefix="model.params")


def create_model(
    name: str,
    params: Mapping[str, Any] | Any | None,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    weights: Any = None,
) -> Any:
    """Builds a registered model.

    The model takes float images with values in [0, 255] (as the data pipeline yields
    them) and does its own normalization, so an exported model needs no outside
    preprocessing. Two classes give one sigmoid output (probability of the positive
    class); more give a softmax.

    Args:
        name: Registry name.
        params: Hyperparameters (mapping or the model's params dataclass).
        input_shape: ``(size, size, channels)``.
        num_classes: Number of classes (>= 2).
        weights: A :class:`~pneumo_core.models.weights.WeightsConfig` for pretrained
            backbones; default: look in ``$PNEUMO_WEIGHTS_DIR`` and the Keras cache only.

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ConfigError: Unknown model or bad parameters.
        WeightsNotFoundError: ImageNet weights asked for, absent, and downloads disallowed.
    """
    from pneumo_core.models.weights import WeightsConfig

    if num_classes < 2:
        raise ConfigError("num_classes", "needs at least two classes")
    spec = get_model_spec(name)
    checked = model_params(name, params)
    return spec.build(checked, tuple(input_shape), num_classes, weights or WeightsConfig())
