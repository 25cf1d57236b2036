"""Evaluation and the report: the exported model scored once on test, and report.json.

Nothing here chooses anything on the test split: the operating threshold comes from
validation (:func:`score_exported`), then the test split (and the external set) are scored
at it, and :func:`assemble_report` gathers the final stage's results into ``report.json``'s
content (``results.report.html`` renders it).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.configuration import to_dict
from results.final.candidates import Retrained
from results.final.ensemble import TTA_VIEWS
from results.final.options import FinalOptions
from results.final.record import SearchRecord
from results.report.evaluation import (
    binary_evaluation,
    calibration,
    curves,
    subgroup_evaluation,
    subgroup_of,
    threshold_summary,
)

__all__ = [
    "PREDICTION_FILES",
    "ExportedScores",
    "assemble_report",
    "gallery",
    "plain",
    "score_exported",
    "write_predictions",
]

PREDICTION_FILES = {"val": "val_predictions.csv", "test": "test_predictions.csv"}


@dataclass
class ExportedScores:
    """The exported model's probabilities and its thresholds, chosen on validation.

    Attributes:
        val: Validation probabilities.
        test: Test probabilities (predicted once; nothing is chosen on them).
        external: The external set's probabilities, or None without one.
        thresholds: ``operating`` (validation sensitivity >= the target), ``0.5``, ``youden``.
    """

    val: np.ndarray
    test: np.ndarray
    external: np.ndarray | None
    thresholds: dict[str, float]

    @property
    def operating(self) -> float:
        """The operating threshold."""
        return self.thresholds["operating"]


def score_exported(
    model, data, external, target: float, known: dict[str, Any] | None = None
) -> ExportedScores:
    """Predicts validation, test and the external set with the exported model; thresholds.

    Args:
        model: The exported Keras model.
        data: The prepared data.
        external: The external set, or None.
        target: The validation sensitivity the operating threshold must reach.
        known: Probabilities already predicted by the side-by-side pass (``val``, ``test``,
            ``external``), used instead of predicting again.
    """
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import threshold_for_sensitivity, youden_threshold

    known = known or {}

    def probs(split: str, images: Callable[[], np.ndarray]) -> np.ndarray:
        found = known.get(split)
        return found if found is not None else predict_batches(model, images())

    val_labels = data.labels[data.splits["val"]]
    val = probs("val", lambda: data.arrays("val")[0])
    thresholds = {
        "operating": threshold_for_sensitivity(val_labels, val, target),
        "0.5": 0.5,
        "youden": youden_threshold(val_labels, val),
    }
    test = probs("test", lambda: data.arrays("test")[0])
    outside = probs("external", lambda: external.images) if external is not None else None
    return ExportedScores(val, test, outside, thresholds)


def temperature_scaling(
    val_labels: np.ndarray,
    val_probs: np.ndarray,
    test_labels: np.ndarray,
    test_probs: np.ndarray,
    seed: int,
    before: dict[str, Any],
) -> dict[str, Any]:
    """Temperature scaling fitted on validation, and calibration before and after it.

    Reported only: the exported model's probabilities are not changed (the temperature
    keeps the images' order, so AUC and the decisions at the threshold stay the same).
    ``before`` is the test split's :func:`results.report.evaluation.calibration`, computed already.
    The ``platt`` entry is the same for Platt scaling (a temperature plus a bias,
    :func:`pneumo_core.calibration.fit_platt`), which can undo the shift class weights make.
    """
    from pneumo_core.calibration import apply_platt, apply_temperature, fit_platt, fit_temperature

    temperature = fit_temperature(val_labels, val_probs)
    slope, intercept = fit_platt(val_labels, val_probs)
    scaled = _before_after(
        val_labels,
        val_probs,
        test_labels,
        test_probs,
        lambda p: apply_temperature(p, temperature),
        seed,
        before,
    )
    platt = _before_after(
        val_labels,
        val_probs,
        test_labels,
        test_probs,
        lambda p: apply_platt(p, slope, intercept),
        seed,
        before,
    )
    return {
        "temperature": temperature,
        "fitted_on": "validation",
        **scaled,
        "platt": {"slope": slope, "intercept": intercept, **platt},
        "applied_to_the_exported_model": False,
    }


def _before_after(
    val_labels: np.ndarray,
    val_probs: np.ndarray,
    test_labels: np.ndarray,
    test_probs: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray],
    seed: int,
    before: dict[str, Any],
) -> dict[str, Any]:
    """Validation log loss and the test split's calibration before and after ``transform``."""
    from pneumo_core.calibration import log_loss

    test_after = transform(test_probs)
    after = calibration(test_labels, test_after, seed=seed)
    return {
        "validation_log_loss": {
            "before": log_loss(val_labels, val_probs),
            "after": log_loss(val_labels, transform(val_probs)),
        },
        "test": {
            "bins_after": after["bins"],
            "ece": {"before": before["ece"], "after": after["ece"]},
            "brier": {"before": before["brier"], "after": after["brier"]},
            "log_loss": {
                "before": log_loss(test_labels, test_probs),
                "after": log_loss(test_labels, test_after),
            },
        },
    }


def assemble_report(
    *,
    run_dir: Path,
    record: SearchRecord,
    search_summary: dict[str, Any],
    options: FinalOptions,
    runs: list[Retrained],
    chosen: Retrained,
    members: list[Retrained],
    scores: ExportedScores,
    external,
    comparison: dict[str, Any] | None,
    robustness: dict[str, Any] | None,
) -> dict[str, Any]:
    """The content of ``report.json`` (before :func:`plain`), gallery and model excluded.

    Args:
        run_dir: The run folder.
        record: What the search handed over.
        search_summary: :func:`results.board.summary.summarize_search`'s result.
        options: The final stage's options.
        runs: Every retraining.
        chosen: The best retraining.
        members: The exported model's members (``[chosen]`` for a single model).
        scores: The exported model's probabilities and thresholds.
        external: The external set, or None.
        comparison: :func:`results.final.ensemble.side_by_side`'s result, or None.
        robustness: The robustness table of the test split, or None.
    """
    data, config = chosen.data, chosen.config
    objective = config.objective
    seed = record.seed

    def evaluate(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
        return binary_evaluation(
            labels,
            probs,
            scores.operating,
            class_names=data.class_names,
            seed=seed,
            n_boot=options.n_boot,
            tau=objective.tau,
            w=objective.w,
        )

    report: dict[str, Any] = {
        "report_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "experiment": record.name,
        "data": data.summary,
        "search": search_summary,
        "final": _final_block(options, runs, chosen),
        **_test_sections(data, scores, options.target_sensitivity, seed, evaluate),
        "predictions": dict(PREDICTION_FILES),
        "environment": _environment(record.seed, config.data.split_seed, runs),
        "config": {"experiment": record.experiment, "final_model": to_dict(config)},
        "data_fingerprint": data.fingerprint,
    }
    if external is not None:
        report["external"] = {**external.summary, **evaluate(external.labels, scores.external)}
    if robustness is not None:
        report["robustness"] = robustness
    if options.ensemble or options.tta:
        report["ensemble"] = _ensemble_block(options, members, comparison)
    return report


def _environment(seed: int, split_seed: int, runs: list[Retrained]) -> dict[str, Any]:
    """Versions, hardware and every seed (the bootstrap's is the search's)."""
    from pneumo_core.environment import describe_environment

    return {
        **describe_environment(),
        "seeds": {
            "search": seed,
            "split": split_seed,
            "retrain": sorted({r.seed for r in runs}),
            "bootstrap": seed,
        },
    }


def _final_block(options: FinalOptions, runs: list[Retrained], chosen: Retrained) -> dict[str, Any]:
    """The report's ``final``: the options, every retraining and the chosen one."""
    objective = chosen.config.objective
    return {
        "options": dataclasses.asdict(options),
        "objective": objective.model_key,
        "mode": objective.mode,
        "runs": [
            {
                "trial_id": r.trial_id,
                "seed": r.seed,
                "status": r.result.status,
                "best_epoch": r.result.best_epoch,
                "epochs_run": r.result.epochs_run,
                "validation_objective": r.value,
                "seconds": round(r.result.seconds, 1),
                "chosen": r is chosen,
            }
            for r in runs
        ],
        "chosen": {"trial_id": chosen.trial_id, "seed": chosen.seed},
        "validation_metrics": chosen.result.best_metrics,
        "history": chosen.result.history,
        "param_count": chosen.result.param_count,
    }


def _test_sections(data, scores: ExportedScores, target: float, seed: int, evaluate) -> dict:
    """The report's ``thresholds`` and ``test``: the evaluation at the operating threshold,
    curves, calibration (with temperature scaling fitted on validation) and subgroups."""
    val_labels = data.labels[data.splits["val"]]
    test_labels = data.labels[data.splits["test"]]
    test_calibration = calibration(test_labels, scores.test, seed=seed)
    groups = [subgroup_of(data.relpaths[i], int(data.labels[i])) for i in data.splits["test"]]
    return {
        "thresholds": {
            "chosen": "operating",
            "target_sensitivity": target,
            "validation": threshold_summary(val_labels, scores.val, scores.thresholds),
            "test": threshold_summary(test_labels, scores.test, scores.thresholds),
        },
        "test": {
            **evaluate(test_labels, scores.test),
            "curves": curves(test_labels, scores.test),
            "calibration": {
                **test_calibration,
                "temperature_scaling": temperature_scaling(
                    val_labels, scores.val, test_labels, scores.test, seed, test_calibration
                ),
            },
            "subgroups": subgroup_evaluation(test_labels, scores.test, groups, scores.operating),
        },
    }


def _ensemble_block(options: FinalOptions, members: list[Retrained], comparison) -> dict:
    """The report's ``ensemble``: members, TTA views and the side-by-side comparison."""
    block: dict[str, Any] = {
        "members": [m.trial_id for m in members],
        "tta_views": [list(v) for v in TTA_VIEWS] if options.tta else [],
        "comparison": comparison["comparison"] if comparison else [],
    }
    if options.ensemble and len(members) < 2:
        block["note"] = f"only {len(members)} usable configuration; the single best model is used"
    return block


def write_predictions(path: Path, data, split: str, probs: np.ndarray, threshold: float) -> None:
    """Writes one split's predictions (path, patient, label, subgroup, probability) as CSV."""
    index = data.splits[split]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["path", "patient", "label", "class", "subgroup", "probability", "predicted"]
        )
        for i, p in zip(index.tolist(), probs.tolist()):
            label = int(data.labels[i])
            writer.writerow(
                [
                    data.relpaths[i],
                    data.patients[i],
                    label,
                    data.class_names[label],
                    subgroup_of(data.relpaths[i], label),
                    repr(float(p)),
                    int(p >= threshold),
                ]
            )


def gallery(model, data, probs, threshold, count, folder: Path) -> list[dict[str, Any]]:
    """Grad-CAM overlays of the ``count`` worst false negatives and false positives on test.

    Each map explains the class the model predicted. Returns the gallery's entries (kind,
    path, probability, image file relative to the final folder).
    """
    from pneumo_core.explain import grad_cam, overlay_png

    index = data.splits["test"]
    labels = data.labels[index]
    wrong_negative = np.flatnonzero((labels == 1) & (probs < threshold))
    wrong_positive = np.flatnonzero((labels == 0) & (probs >= threshold))
    picks = [
        ("false negative", wrong_negative[np.argsort(probs[wrong_negative])][:count]),
        ("false positive", wrong_positive[np.argsort(-probs[wrong_positive])][:count]),
    ]
    items = []
    folder.mkdir(parents=True, exist_ok=True)
    for kind, chosen in picks:
        if len(chosen) == 0:
            continue
        images = np.asarray(data.images[index[chosen]])
        # Explain the class the model predicted: what made it call the image normal
        # (false negative) or pneumonia (false positive).
        heat = grad_cam(model, images, class_index=0 if kind == "false negative" else 1)
        for n, (j, image, heatmap) in enumerate(zip(chosen, images, heat), start=1):
            name = f"{kind.replace(' ', '_')}_{n}.png"
            (folder / name).write_bytes(overlay_png(image, heatmap, size=192))
            items.append(
                {
                    "kind": kind,
                    "path": data.relpaths[index[j]],
                    "probability": float(probs[j]),
                    "image": f"gallery/{name}",
                }
            )
    return items


def plain(value: Any) -> Any:
    """JSON-ready values: NumPy scalars unwrapped, NaN and infinity as ``null``."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
