"""Image-folder datasets: discovery, patient-grouped splits, decoding cache, summary.

Importing this package does not import TensorFlow; decoding an image does (its decoder is
the one preprocessing, :mod:`pneumo_core.data.decode`), and so does
:mod:`pneumo_core.data.pipeline`.
"""

from __future__ import annotations

from pneumo_core.data.config import AugmentConfig, DataConfig
from pneumo_core.data.dataset import PreparedData, prepare_data, problem_lines
from pneumo_core.data.decode import BadImageError, decode_image

__all__ = [
    "AugmentConfig",
    "BadImageError",
    "DataConfig",
    "PreparedData",
    "decode_image",
    "prepare_data",
    "problem_lines",
]
