"""Site calibration (``pneumo-search calibrate``): fit the operating point on a hospital's
own labelled sample before deploying, into a calibrated copy of the export.

A threshold chosen on the training hospital's validation split does not hold at another
site, and class-weighted models' probabilities sit off the diagonal there. Local
validation is what a careful site does first: label a few hundred of its own images, check
the model on them, and set the operating point there. This module:

1. predicts the site sample once, through the export's own path (:func:`predict_files`:
   the same decoding and model as ``predict``);
2. fits Platt scaling (``sigmoid(a * logit(p) + b)``, :func:`pneumo_core.calibration.fit_platt`)
   on the site's labels; isotonic regression is fitted too and both are compared
   cross-fitted (calibrate on half, score the other half, swap), never on the images they
   were fitted on;
3. picks the threshold for the target sensitivity on the calibrated probabilities, with
   bootstrap intervals of the threshold and of the specificity it gives;
4. writes a **calibrated copy** of the export (the Platt layer inside the graph, so
   ``predict``, ``explain`` and both SavedModel signatures give the calibrated probability
   and the new label); its card records the site sample, the metrics before and after, both
   operating points and the date. The original export is never modified.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_errors import DataError, PneumoError
from results.serving.export import (
    MODEL_FILE,
    export_model,
    load_exported,
    load_pixel_scope,
    read_card,
    sha256_of,
)
from results.serving.predict import collect_files, predict_files

__all__ = [
    "CalibrationOutcome",
    "SitePredictions",
    "calibrate_export",
    "cross_fitted",
    "positives_needed",
    "site_predictions",
]

#: Half-width of the interval a site's sensitivity should be estimated within.
SENSITIVITY_PRECISION = 0.03
_Z = 1.959963984540054


@dataclass(frozen=True)
class SitePredictions:
    """The export's probabilities on a labelled site sample.

    Attributes:
        paths: Each readable image, relative to the site folder (``CLASS/file``), sorted.
        labels: Each image's label (the index of its class folder in the card's classes).
        probs: The export's positive-class probability of each image.
        skipped: ``(path, reason)`` of each unreadable file.
        sha256: The sample's fingerprint: sha256 of its sorted ``path,label`` lines.
    """

    paths: tuple[str, ...]
    labels: np.ndarray
    probs: np.ndarray
    skipped: tuple[tuple[str, str], ...]
    sha256: str


@dataclass(frozen=True)
class CalibrationOutcome:
    """What ``calibrate`` wrote and measured.

    Attributes:
        folder: The calibrated copy.
        calibration: The card's ``site_calibration`` block.
        warnings: What the user should know (a sample too small for the target...).
    """

    folder: Path
    calibration: dict[str, Any]
    warnings: tuple[str, ...]


def positives_needed(target: float, precision: float = SENSITIVITY_PRECISION) -> int:
    """Positives needed to estimate a sensitivity near ``target`` within +/- ``precision``
    (95% normal interval)."""
    return math.ceil(_Z**2 * target * (1 - target) / precision**2)


def site_predictions(model_dir: str | Path, site_dir: str | Path) -> SitePredictions:
    """Predicts every image of ``SITE_DIR/<class>/`` with the export in ``model_dir``.

    Raises:
        DataError: A class folder is missing, no image is readable, or one class only has
            readable images.
    """
    card = read_card(model_dir)
    site = Path(site_dir).expanduser().resolve()
    classes = list(card["class_names"])
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = site / name
        if not folder.is_dir():
            raise DataError(f"{folder}: missing (the site sample needs a folder per class: "
                            f"{', '.join(classes)})")  # fmt: skip
        found = collect_files([folder]) if any(folder.iterdir()) else []
        files += found
        labels += [label] * len(found)
    rows = predict_files(model_dir, files)
    ok = [i for i, row in enumerate(rows) if row["status"] == "ok"]
    skipped = tuple(
        (str(files[i].relative_to(site)), rows[i]["error"])
        for i in range(len(rows))
        if rows[i]["status"] != "ok"
    )
    if not ok:
        raise DataError(f"{site}: no readable image in the site sample ({len(rows)} files)")
    paths = tuple(str(files[i].relative_to(site)) for i in ok)
    y = np.array([labels[i] for i in ok], dtype=int)
    if len(set(y.tolist())) < 2:
        only = classes[int(y[0])]
        raise DataError(f"{site}: every readable image is {only}; calibration needs both classes")
    p = np.array([float(rows[i][f"prob_{classes[1]}"]) for i in ok])
    order = np.argsort(paths, kind="stable")
    paths = tuple(paths[i] for i in order)
    y, p = y[order], p[order]
    lines = "".join(f"{path},{label}\n" for path, label in zip(paths, y.tolist()))
    return SitePredictions(paths, y, p, skipped, hashlib.sha256(lines.encode()).hexdigest())


def _point(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity and accuracy at a threshold."""
    calls = p >= threshold
    return {
        "threshold": float(threshold),
        "sensitivity": float(np.mean(calls[y == 1])),
        "specificity": float(np.mean(~calls[y == 0])),
        "accuracy": float(np.mean(calls == (y == 1))),
    }


def _scores(y: np.ndarray, p: np.ndarray, threshold: float, seed: int) -> dict[str, Any]:
    """AUC, the point at ``threshold``, ECE and Brier of probabilities ``p``."""
    from pneumo_core.metrics import roc_auc
    from results.report.evaluation import calibration

    reliability = calibration(y, p, seed=seed, n_boot=0)  # ECE and Brier only: no interval
    return {
        "auc": roc_auc(y, p),
        **_point(y, p, threshold),
        "ece": reliability["ece"],
        "brier": reliability["brier"],
        "bins": reliability["bins"],
    }


def _isotonic(y_fit, p_fit) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p_fit, y_fit)
    return lambda p: np.asarray(model.predict(p), dtype=np.float64)


def _platt(y_fit, p_fit) -> Callable[[np.ndarray], np.ndarray]:
    from pneumo_core.calibration import apply_platt, fit_platt

    slope, intercept = fit_platt(y_fit, p_fit)
    return lambda p: apply_platt(p, slope, intercept)


def cross_fitted(
    y: np.ndarray, p: np.ndarray, target: float, *, seed: int, repeats: int = 20
) -> dict[str, Any]:
    """What site calibration gains on images it was not fitted on.

    Each repeat splits the sample in two halves (stratified by class), fits on one half
    (Platt or isotonic, then the threshold for ``target`` sensitivity), scores the other,
    and swaps. ``validation threshold`` is the export's own threshold, unfitted.

    Returns:
        Per method (``platt``, ``isotonic``): the median and 2.5-97.5% range over the
        halves of sensitivity, specificity, accuracy and ECE on the held-out half.
    """
    from results.report.evaluation import calibration

    rng = np.random.default_rng(seed)
    results: dict[str, list[dict[str, float]]] = {"platt": [], "isotonic": []}
    for _ in range(repeats):
        halves = [np.zeros(len(y), bool), np.zeros(len(y), bool)]
        for c in (0, 1):
            members = rng.permutation(np.flatnonzero(y == c))
            halves[0][members[: len(members) // 2]] = True
        halves[1] = ~halves[0]
        for fit, held in ((halves[0], halves[1]), (halves[1], halves[0])):
            for name, method in (("platt", _platt), ("isotonic", _isotonic)):
                transform = method(y[fit], p[fit])
                threshold = site_threshold(y[fit], transform(p[fit]), target)
                after = transform(p[held])
                point = _point(y[held], after, threshold)
                point["ece"] = calibration(y[held], after, seed=seed, n_boot=0)["ece"]
                results[name].append(point)
    summary: dict[str, Any] = {"repeats": repeats, "halves": 2 * repeats}
    for name, points in results.items():
        summary[name] = {
            key: {
                "median": float(np.median([q[key] for q in points])),
                "low": float(np.quantile([q[key] for q in points], 0.025)),
                "high": float(np.quantile([q[key] for q in points], 0.975)),
            }
            for key in ("sensitivity", "specificity", "accuracy", "ece")
        }
    return summary


def site_threshold(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The threshold for ``target`` sensitivity on the site, placed halfway between the
    probability of the last positive it must keep and the next lower probability, so the
    same images fall on each side when the copy recomputes them in float32."""
    from pneumo_core.metrics import threshold_for_sensitivity

    keep = threshold_for_sensitivity(y, p, target)
    below = p[p < keep]
    return float((keep + below.max()) / 2) if below.size else float(keep)


def _operating_point(y, p_after, target: float, seed: int, n_boot: int) -> dict[str, Any]:
    """The site threshold for ``target`` with bootstrap intervals of it and its specificity."""
    from pneumo_core.metrics import bootstrap_statistic, specificity_at_sensitivity

    threshold = site_threshold(y, p_after, target)
    t_low, t_high = bootstrap_statistic(
        lambda yy, pp: site_threshold(yy, pp, target), y, p_after,
        seed=seed, n_boot=n_boot,
    )  # fmt: skip
    s_low, s_high = bootstrap_statistic(
        lambda yy, pp: specificity_at_sensitivity(yy, pp, target), y, p_after,
        seed=seed, n_boot=n_boot,
    )  # fmt: skip
    return {
        "threshold": threshold,
        "threshold_interval": [t_low, t_high],
        "specificity_interval": [s_low, s_high],
        "method": f"bootstrap ({n_boot}), stratified, threshold re-picked in each resample",
    }


def _warnings(site: SitePredictions, target: float) -> list[str]:
    positives = int(site.labels.sum())
    needed = positives_needed(target)
    out = []
    if positives < needed:
        out.append(
            f"the site sample has {positives} positives: estimating a sensitivity near "
            f"{target:g} within +/- {SENSITIVITY_PRECISION:g} takes about {needed}; the site "
            "threshold's sensitivity is uncertain (see its interval)"
        )
    if site.skipped:
        out.append(f"{len(site.skipped)} unreadable files skipped: {site.skipped[0][0]}, ...")
    return out


def calibrate_export(
    model_dir: str | Path,
    site_dir: str | Path,
    *,
    target_sensitivity: float = 0.95,
    out: str | Path | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    report: bool = False,
    log: Callable[[str], None] = print,
) -> CalibrationOutcome:
    """Calibrates an export on a site sample into a new folder (see the module docstring).

    Args:
        model_dir: The export (``runs/NAME/final/model`` or an ``export`` copy).
        site_dir: The site sample, ``SITE_DIR/<class>/*`` for each of the card's classes.
        target_sensitivity: The site threshold reaches at least this sensitivity there.
        out: Where the calibrated copy goes (default: ``MODEL_DIR-calibrated`` beside it);
            must not exist or be empty.
        seed: Seed of the bootstraps and of the cross-fitting's halves.
        n_boot: Bootstrap resamples.
        report: Also write ``calibration_report.html`` into the copy (the site's ROC with
            both operating points, reliability before and after, PPV/NPV at its prevalence).
        log: Where progress and warnings go.

    Raises:
        PneumoError: ``out`` holds files, or is the export itself.
        DataError: The site sample is refused (one class, nothing readable, no class folder).
    """
    model_dir = Path(model_dir).expanduser().resolve()
    target_dir = _checked_target(model_dir, out, target_sensitivity)
    site = site_predictions(model_dir, site_dir)
    warnings = _warnings(site, target_sensitivity)
    for line in warnings:
        log(f"warning: {line}")
    card = read_card(model_dir)
    block = _calibration_block(card, site, Path(site_dir), target_sensitivity, seed, n_boot)
    block["source_model"] = {
        "folder": str(model_dir),
        MODEL_FILE: sha256_of(model_dir / MODEL_FILE),
    }
    block["warnings"] = warnings
    y, p = site.labels, site.probs
    _write_copy(model_dir, target_dir, card, block)
    if report:
        from results.report.calibration_page import write_calibration_report

        log(f"report: {write_calibration_report(block, y, p, target_dir)}")
    log(summary_line(block))
    return CalibrationOutcome(target_dir, block, tuple(warnings))


def _checked_target(model_dir: Path, out: str | Path | None, target_sensitivity: float) -> Path:
    """Where the copy goes (``MODEL_DIR-calibrated`` by default), refused when it is the
    export itself or holds files, or when the target sensitivity is out of range."""
    target_dir = Path(out) if out else model_dir.with_name(model_dir.name + "-calibrated")
    target_dir = target_dir.expanduser().resolve()
    if target_dir == model_dir:
        raise PneumoError(f"{target_dir}: --out must differ from the export (it is never changed)")
    if target_dir.exists() and any(target_dir.iterdir()):
        raise PneumoError(f"{target_dir}: exists and is not empty")
    if not 0 < target_sensitivity <= 1:
        raise PneumoError(f"--target-sensitivity must be in (0, 1], got {target_sensitivity}")
    return target_dir


def _calibration_block(
    card: dict, site: SitePredictions, site_dir: Path, target: float, seed: int, n_boot: int
) -> dict[str, Any]:
    """The card's ``site_calibration``: the fit, the sample, before and after, both
    operating points and the cross-fitted estimate."""
    from pneumo_core.calibration import fit_platt

    y, p = site.labels, site.probs
    slope, intercept = fit_platt(y, p)
    after = _platt(y, p)(p)
    point = _operating_point(y, after, target, seed, n_boot)
    validation_threshold = float(card["threshold"]["value"])
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "method": "platt",
        "slope": slope,
        "intercept": intercept,
        "target_sensitivity": target,
        "site_sample": {
            "folder": str(site_dir.expanduser().resolve()),
            "images": len(y),
            "counts": {card["class_names"][c]: int((y == c).sum()) for c in (0, 1)},
            "prevalence": float(y.mean()),
            "sha256_of_sorted_files_and_labels": site.sha256,
            "skipped_unreadable": len(site.skipped),
        },
        "before": _scores(y, p, validation_threshold, seed),
        "after": _scores(y, after, point["threshold"], seed),
        "operating_points": {
            "validation": {
                "threshold": validation_threshold,
                "on": "uncalibrated probability",
                "chosen_by": card["threshold"].get("chosen_by", ""),
            },
            "site": {**point, "on": "calibrated probability"},
        },
        "cross_fitted": cross_fitted(y, p, target, seed=seed),
    }


def _write_copy(model_dir: Path, target: Path, card: dict, block: dict) -> None:
    """The export with the Platt layer appended, and its card saying so."""
    import keras

    from pneumo_core.models.layers import PlattScaling

    model, _ = load_exported(model_dir)
    inputs = keras.Input(model.input_shape[1:], name="image")
    outputs = PlattScaling(block["slope"], block["intercept"], name="site_calibration")(
        model(inputs)
    )
    calibrated = keras.Model(inputs, outputs, name=f"{model.name}_site_calibrated")
    kept = {k: v for k, v in card.items() if k not in ("card_version", "serving", "files")}
    kept["name"] = f"{card.get('name', 'model')}-site-calibrated"
    kept["threshold"] = {
        "value": block["operating_points"]["site"]["threshold"],
        "chosen_by": (
            f"site calibration: highest threshold with sensitivity >= "
            f"{block['target_sensitivity']:g} on the site sample "
            f"({block['site_sample']['images']} images), on Platt-calibrated probabilities"
        ),
        "validation": card["threshold"],
    }
    kept["output"] = "sigmoid probability of the positive class, Platt-calibrated on the site"
    kept["site_calibration"] = {k: v for k, v in block.items() if k not in ("before", "after")}
    kept["site_calibration"]["before"] = {k: v for k, v in block["before"].items() if k != "bins"}
    kept["site_calibration"]["after"] = {k: v for k, v in block["after"].items() if k != "bins"}
    target.mkdir(parents=True, exist_ok=True)
    export_model(calibrated, target, kept, load_pixel_scope(model_dir, card))


def summary_line(block: dict[str, Any]) -> str:
    """The site's specificity and ECE before and after, in one line."""
    before, after = block["before"], block["after"]
    site = block["site_sample"]
    return (
        f"site sample {site['images']} images (prevalence {site['prevalence']:.3f}): "
        f"at the validation threshold sensitivity {before['sensitivity']:.3f} specificity "
        f"{before['specificity']:.3f} ECE {before['ece']:.3f}; calibrated, threshold "
        f"{after['threshold']:.4f}: sensitivity {after['sensitivity']:.3f} specificity "
        f"{after['specificity']:.3f} ECE {after['ece']:.3f}"
    )
