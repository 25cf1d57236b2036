"""Training one configuration: :class:`TrainConfig` and :func:`train_model`.

``from pneumo_core.train import train_model`` imports TensorFlow; the configuration
classes live in :mod:`pneumo_core.train.config`, which does not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train_model"]


def __getattr__(name: str) -> Any:
    if name in ("TrainConfig", "load_train_config"):
        from pneumo_core.train import config

        return getattr(config, name)
    if name in ("TrainResult", "train_model", "configure_threads"):
        from pneumo_core.train import loop

        return getattr(loop, name)
    raise AttributeError(name)
