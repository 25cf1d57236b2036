"""The model card of the exported model: input, preprocessing, threshold, metrics, provenance."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pneumo_core.configuration import to_dict
from results.candidates import Retrained
from results.ensemble import TTA_VIEWS

__all__ = ["model_card"]


def model_card(
    name: str,
    run: Retrained,
    thresholds: dict[str, float],
    test_eval: dict[str, Any],
    target: float,
    *,
    members: list[Retrained] | None = None,
    tta: bool = False,
) -> dict[str, Any]:
    """The exported model's card (``model_card.json``, hashes added by the export).

    Args:
        name: The experiment's name.
        run: The chosen retraining (its configuration and data describe the input).
        thresholds: ``operating`` and the alternatives, chosen on validation.
        test_eval: The test split's evaluation (:func:`results.evaluation.binary_evaluation`).
        target: The validation sensitivity the operating threshold was chosen for.
        members: The ensemble's members (more than one makes the card an ensemble's).
        tta: Whether the exported model averages over :data:`results.ensemble.TTA_VIEWS`.
    """
    from pneumo_core.environment import package_versions

    data, config = run.data, run.config
    card = {
        "name": f"{name}-{run.trial_id}-seed{run.seed}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "class_names": list(data.class_names),
        "positive_class": data.class_names[1],
        "output": "sigmoid probability of the positive class, shape (N, 1)",
        "input": {
            "size": data.config.image_size,
            "channels": data.input_shape[-1],
            "color_mode": data.config.color_mode,
            "aspect": data.config.aspect,
            "dtype": "float32",
            "value_range": [0, 255],
            "preprocessing": (
                "Pillow decode; convert to the color mode; resize bilinear to size x size "
                "(squash, or pad keeping the aspect ratio); float32 pixels in [0, 255]. "
                "The model normalizes inside (see config.model)."
            ),
        },
        "normalization": config.model.params.get("normalization", "model default"),
        "threshold": {
            "value": thresholds["operating"],
            "chosen_by": f"highest validation threshold with sensitivity >= {target:g}",
            "alternatives": {k: v for k, v in thresholds.items() if k != "operating"},
        },
        "test_metrics": {k: v["value"] for k, v in test_eval["metrics"].items()},
        "config": to_dict(config),
        "data_fingerprint": data.fingerprint,
        "versions": package_versions(),
    }
    members = members or [run]
    if len(members) > 1 or tta:
        card["name"] = f"{name}-ensemble{len(members)}" + ("-tta" if tta else "")
        card["ensemble"] = {
            "combination": "mean of the members' probabilities over the views (one Keras model)",
            "members": [{"trial_id": m.trial_id, "seed": m.seed} for m in members],
            "tta_views": [list(v) for v in TTA_VIEWS] if tta else [[0.0, 0.0]],
        }
    return card
