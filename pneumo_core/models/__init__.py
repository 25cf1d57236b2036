"""The model registry and its built-in models (plain CNN, ImageNet transfer backbones).

Import of this package does not import TensorFlow; building a model does.
"""

from __future__ import annotations

# The built-in families register themselves with the registry as these modules load: the
# registry imports none of them, so there is no import circle.
from pneumo_core.models import cnn, transfer  # noqa: F401  (registers cnn and the backbones)
from pneumo_core.models.registry import (
    ModelSpec,
    create_model,
    get_model_spec,
    list_models,
    model_params,
    register_model,
)
from pneumo_core.models.transfer import FineTunePlan, fine_tune_plan
from pneumo_core.models.weights import WeightsConfig, resolve_weights

__all__ = [
    "FineTunePlan",
    "ModelSpec",
    "WeightsConfig",
    "create_model",
    "fine_tune_plan",
    "get_model_spec",
    "list_models",
    "model_params",
    "register_model",
    "resolve_weights",
]
