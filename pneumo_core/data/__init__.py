"""Image-folder datasets: discovery, patient-grouped splits, decoding cache, summary.

Nothing here imports TensorFlow except :mod:`pneumo_core.data.pipeline`.
"""

from __future__ import annotations

from pneumo_core.data.config import AugmentConfig, DataConfig
from pneumo_core.data.dataset import PreparedData, prepare_data
from pneumo_core.data.decode import BadImageError, decode_image

__all__ = [
    "AugmentConfig",
    "BadImageError",
    "DataConfig",
    "PreparedData",
    "decode_image",
    "prepare_data",
]
