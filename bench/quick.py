"""What the benches' ``--quick`` modes share: a tiny CNN space (builds at 32 px, trains in
seconds), so the test suite runs every bench end to end without training real models."""

from __future__ import annotations

from typing import Any

__all__ = ["QUICK_SPACE"]

QUICK_SPACE: dict[str, Any] = {
    "model.name": "cnn",
    "model.params.num_blocks": 2,
    "model.params.filters": {"choice": [4, 8]},
    "model.params.head": "global_avg",
    "model.params.dense_units": [8],
    "training.learning_rate": {"float": [1.0e-3, 1.0e-2], "log": True},
}
