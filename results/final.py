"""``pneumo-search final``: retrain the best, pick the threshold, test once, report, export.

1. Read the run's leaderboard and experiment; take the top K ranked configurations.
2. Retrain each with N seeds on the train split (early stopping on validation, exactly as a
   trial trains: seed ``search.seed + i``, so seed 0 repeats the trial); keep the run best on
   validation.
3. Choose the operating threshold on the **validation** split (the highest threshold whose
   sensitivity reaches the target); the 0.5 and Youden thresholds are reported beside it.
4. Predict the test split once, at the end: nothing is chosen on it.
5. Write ``final/report.json``, ``final/report.html``, the predictions of both splits, the
   plots, a Grad-CAM gallery of the worst errors, and export the model to ``final/model``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.configuration import require, to_dict
from pneumo_core.errors import PneumoError
from results.evaluation import (
    binary_evaluation,
    calibration,
    curves,
    subgroup_evaluation,
    subgroup_of,
    threshold_summary,
)
from results.leaderboard import LEADERBOARD_FILE, read_csv_rows, row_params

__all__ = ["FINAL_DIR", "FinalOptions", "FinalOutcome", "run_final"]

FINAL_DIR = "final"
REPORT_JSON, REPORT_HTML = "report.json", "report.html"
PREDICTION_FILES = {"val": "val_predictions.csv", "test": "test_predictions.csv"}


@dataclass(frozen=True)
class FinalOptions:
    """How the final stage runs.

    Attributes:
        top: Configurations retrained (the top K of the leaderboard).
        seeds: Seeds per configuration.
        target_sensitivity: Sensitivity the operating threshold must reach on validation.
        epochs: Epoch budget of each retraining (default: the search's trial budget).
        n_boot: Bootstrap resamples for the AUC-type intervals.
        gallery: Worst false negatives and worst false positives shown (each).
        robustness: Re-score the test split under the robustness suite's shifts
            (:mod:`pneumo_core.robustness`; about 30 more predictions of the test split).
        ensemble: 0 for a single model, or K >= 2: the K best retrained configurations
            that differ (each its best seed) become one model averaging their probabilities;
            it is thresholded, tested, reported beside its members and exported.
        tta: Test-time augmentation: the exported model (single or ensemble) also averages
            over :data:`TTA_VIEWS`; reported beside the model without it.
    """

    top: int = 1
    seeds: int = 1
    target_sensitivity: float = 0.95
    epochs: int | None = None
    n_boot: int = 1000
    gallery: int = 6
    robustness: bool = True
    ensemble: int = 0
    tta: bool = False

    def __post_init__(self) -> None:
        require(self.ensemble == 0 or self.ensemble >= 2, "--ensemble", "must be 0 or >= 2")
        require(self.top >= 1, "--top", "must be >= 1")
        require(self.seeds >= 1, "--seeds", "must be >= 1")
        require(0 < self.target_sensitivity <= 1, "--target-sensitivity", "must be in (0, 1]")
        require(self.epochs is None or self.epochs >= 1, "--epochs", "must be >= 1")
        require(self.n_boot >= 50, "n_boot", "must be >= 50")
        require(self.gallery >= 0, "gallery", "must be >= 0")


@dataclass
class FinalOutcome:
    """Where the final stage wrote its results, and the headline numbers.

    Attributes:
        folder: ``RUN_DIR/final``.
        report: The content of ``report.json``.
    """

    folder: Path
    report: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        """The exported model's folder."""
        return self.folder / "model"


@dataclass
class Retrained:
    """One configuration retrained from scratch with one seed.

    Attributes:
        trial_id: The search trial whose configuration this is.
        seed: The retraining seed.
        config: The :class:`pneumo_core.train.config.TrainConfig` trained.
        data: The prepared data it was trained on.
        result: :func:`pneumo_core.train.loop.train_model`'s result (its ``model`` is
            dropped once the run can no longer be chosen).
        value: The validation objective of its best epoch (NaN when none was scored).
    """

    trial_id: str
    seed: int
    config: Any
    data: Any
    result: Any
    value: float


def ranked_candidates(run_dir: Path, rows: list[dict[str, str]], top: int) -> list[dict[str, str]]:
    """The ``top`` best ranked trials whose configurations differ (a repeat is skipped).

    Args:
        run_dir: The search's run folder (named in errors).
        rows: Its leaderboard rows, best first.
        top: How many to return at most.

    Raises:
        PneumoError: No leaderboard, or no trial with a finite objective.
    """
    if not rows:
        raise PneumoError(f"{run_dir / LEADERBOARD_FILE}: missing or empty (run a search first)")
    ranked = [row for row in rows if row.get("rank")]
    if not ranked:
        raise PneumoError(f"{run_dir / LEADERBOARD_FILE}: no trial has a finite objective")
    distinct: dict[str, dict[str, str]] = {}
    for row in ranked:
        distinct.setdefault(json.dumps(row_params(row), sort_keys=True, default=str), row)
    return list(distinct.values())[:top]


def retrain(
    experiment, rows: list[dict[str, str]], options: FinalOptions, log: Callable[[str], None]
) -> list[Retrained]:
    """Retrains each leaderboard row's configuration ``options.seeds`` times.

    Args:
        experiment: The search's :class:`search.config.ExperimentConfig` (absolute paths).
        rows: Leaderboard rows (:func:`ranked_candidates`).
        options: ``seeds``, ``epochs`` (0 = the experiment's) and ``ensemble`` (how many
            models stay in memory for an ensemble).
        log: Where progress lines go.

    Returns:
        One :class:`Retrained` per row and seed, in order.

    Raises:
        PneumoError: The data does not have two classes.
    """
    from pneumo_core.data import prepare_data
    from pneumo_core.train.loop import train_model

    runs: list[Retrained] = []
    prepared: dict[Any, Any] = {}
    total = len(rows) * options.seeds
    for row in rows:
        params = row_params(row)
        for i in range(options.seeds):
            seed = experiment.search.seed + i
            config = experiment.trial_config(params, seed=seed)
            if options.epochs:
                training = dataclasses.replace(config.training, epochs=options.epochs)
                config = dataclasses.replace(config, training=training)
            if config.data not in prepared:
                prepared[config.data] = prepare_data(config.data)
            data = prepared[config.data]
            if data.num_classes != 2:
                raise PneumoError(
                    f"final supports two classes (negative, positive); {data.config.root} "
                    f"has {data.num_classes}: {', '.join(data.class_names)}"
                )
            result = train_model(config, data)
            metric = config.objective.key
            value = result.best_metrics.get(metric, float("nan"))
            log(
                f"retrain {len(runs) + 1}/{total}: trial {row['trial_id']} seed {seed}: "
                f"{result.status}, best epoch {result.best_epoch}, "
                f"validation {metric} {value:.4f} ({result.seconds:.0f} s)"
            )
            runs.append(Retrained(row["trial_id"], seed, config, data, result, value))
            keep = _kept(runs, options.ensemble)
            for run in runs:
                if all(run is not k for k in keep):
                    run.result.model = None  # only what can still be used stays in memory
    return runs


def _kept(runs: list[Retrained], ensemble: int) -> list[Retrained]:
    """The best run, or with an ensemble its best members so far (one per trial)."""
    if not any(_usable(r) for r in runs):
        return []
    best = _best(runs)
    if ensemble < 2:
        return [best]
    sign = 1.0 if best.config.objective.mode == "max" else -1.0
    per_trial: dict[str, Retrained] = {}
    for run in runs:  # a member must take the same images as the best (same data config)
        if _usable(run) and run.config.data == best.config.data:
            held = per_trial.get(run.trial_id)
            if held is None or sign * run.value > sign * held.value:
                per_trial[run.trial_id] = run
    per_trial[best.trial_id] = best  # ties: the model evaluated as the single best stays
    return sorted(per_trial.values(), key=lambda r: -sign * r.value)[:ensemble]


def _usable(run: Retrained) -> bool:
    return run.result.status != "nan_loss" and bool(np.isfinite(run.value))


def _best(runs: list[Retrained]) -> Retrained:
    usable = [r for r in runs if _usable(r)]
    if not usable:
        raise PneumoError("every retraining diverged (NaN loss); nothing to evaluate")
    mode = usable[0].config.objective.mode
    sign = 1.0 if mode == "max" else -1.0
    return max(usable, key=lambda r: sign * r.value)  # first wins ties (rank, then seed)


def _write_predictions(path: Path, data, split: str, probs: np.ndarray, threshold: float):
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


def _gallery(model, data, probs, threshold, count, folder: Path) -> list[dict[str, Any]]:
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


#: Test-time augmentation views: (dy, dx) shifts as fractions of the image size.
TTA_VIEWS = ((0.0, 0.0), (0.04, 0.0), (-0.04, 0.0), (0.0, 0.04), (0.0, -0.04))


def build_ensemble(models: list[Any], *, tta: bool = False) -> Any:
    """One Keras model whose output is the mean of ``models``' probabilities.

    The members must take the same input; each keeps its own normalization inside, so the
    ensemble serves exactly like a single exported model (float images in ``[0, 255]``).

    Args:
        models: The members (one is allowed: with ``tta``, a single model's TTA wrapper).
        tta: Also average over :data:`TTA_VIEWS` (the image shifted by 4% each way).
    """
    import keras

    from pneumo_core.models.layers import FixedShift

    inputs = keras.Input(shape=models[0].input_shape[1:], name="image")
    views = [inputs]
    if tta:
        views = [
            FixedShift(dy, dx, name=f"view_{k}")(inputs) if (dy, dx) != (0.0, 0.0) else inputs
            for k, (dy, dx) in enumerate(TTA_VIEWS)
        ]
    outputs = []
    for k, member in enumerate(models):
        member.name = f"member_{k + 1}"  # nested models need distinct names
        outputs += [member(view) for view in views]
    if len(outputs) == 1:
        return keras.Model(inputs, outputs[0], name="single")
    mean = keras.layers.Average(name="mean_probability")(outputs)
    return keras.Model(inputs, mean, name="ensemble_tta" if tta else "ensemble")


def _candidate_models(members, models, tta: bool) -> list[tuple[str, Any, Any]]:
    """``(name, model, run or None)`` to compare; the last is the one exported.

    One model: itself (and itself with TTA). K members: each member, the ensemble of the
    first 3 (when K > 3), the ensemble of all K; with TTA also member 1 and the ensemble of
    all K with TTA.
    """
    if len(members) == 1:
        candidates = [("single", models[0], members[0])]
    else:
        candidates = [(f"member {k + 1}", m, r) for k, (m, r) in enumerate(zip(models, members))]
        if len(members) > 3:
            candidates.append(("ensemble of 3", build_ensemble(models[:3]), None))
        candidates.append((f"ensemble of {len(members)}", build_ensemble(models), None))
    if tta:
        last = candidates[-1][0]
        if len(members) > 1:
            candidates.append(("member 1 + TTA", build_ensemble(models[:1], tta=True), members[0]))
        candidates.append((f"{last} + TTA", build_ensemble(models, tta=True), None))
    return candidates


_SIDE_KEYS = ("auc", "rw_auc", "sensitivity", "specificity")


def side_by_side(
    candidates, data, target: float, objective, *, external=None, suite_seed: int | None = None
) -> dict[str, Any]:
    """Each candidate ``(name, model, run or None)`` on validation, test, the external set
    and (with ``suite_seed``) the robustness suite at severity 2, each at its own
    validation threshold; the last one is the exported model.

    Args:
        candidates: ``(name, keras model, Retrained or None)`` tuples.
        data: The prepared data (its ``val`` and ``test`` splits are scored).
        target: The validation sensitivity each candidate's threshold is chosen for.
        objective: The experiment's objective config (``tau``, ``w``).
        external: An external labelled set to score too, or None.
        suite_seed: The robustness suite's seed; None leaves the suite out.

    Returns:
        ``comparison``: one row per candidate; ``probs``: the last candidate's
        probabilities on ``val``, ``test`` and ``external`` (None without one), so the
        exported model's predictions are not computed twice.
    """
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import compute_metrics, threshold_for_sensitivity
    from pneumo_core.robustness import apply_shift, robustness_table

    val_images, val_labels = data.arrays("val")
    test_images, test_labels = data.arrays("test")
    views: dict[tuple[str, int], np.ndarray] = {}

    def shift_once(images, name: str, severity: int, seed: int) -> np.ndarray:
        if (name, severity) not in views:  # the same test split for every candidate
            views[name, severity] = apply_shift(images, name, severity, seed)
        return views[name, severity]

    rows = []
    probs: dict[str, Any] = {}
    for name, model, member in candidates:
        val_probs = predict_batches(model, val_images)
        test_probs = predict_batches(model, test_images)
        threshold = threshold_for_sensitivity(val_labels, val_probs, target)
        kw = {"threshold": threshold, "tau": objective.tau, "w": objective.w}
        val = compute_metrics(val_labels, val_probs, **kw)
        test = compute_metrics(test_labels, test_probs, **kw)
        row = {
            "model": name,
            "trial_id": member.trial_id if member else "",
            "seed": member.seed if member else None,
            "threshold": threshold,
            **{f"val_{k}": val[k] for k in ("auc", "rw_auc")},
            **{f"test_{k}": test[k] for k in _SIDE_KEYS},
        }
        probs = {"val": val_probs, "test": test_probs, "external": None}
        if external is not None:
            probs["external"] = predict_batches(model, external.images)
            ext = compute_metrics(external.labels, probs["external"], **kw)
            row.update({f"external_{k}": ext[k] for k in _SIDE_KEYS})
        if suite_seed is not None:
            suite = robustness_table(
                lambda images, model=model: predict_batches(model, images),
                test_images,
                test_labels,
                severities=(2,),
                **kw,
                seed=suite_seed,
                shift=shift_once,
            )["summary"]
            row["suite_mean_rw_auc"] = suite["mean_rw_auc"]
            row["suite_worst_rw_auc"] = suite["worst_rw_auc"]
        rows.append(row)
    return {"comparison": rows, "probs": probs}


def _model_card(experiment, run: Retrained, thresholds, test_eval, target) -> dict[str, Any]:
    from pneumo_core.environment import package_versions

    data, config = run.data, run.config
    return {
        "name": f"{experiment.name}-{run.trial_id}-seed{run.seed}",
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


def run_final(
    run_dir: str | Path,
    options: FinalOptions | None = None,
    *,
    log: Callable[[str], None] = print,
) -> FinalOutcome:
    """Runs the final stage on a finished search.

    Args:
        run_dir: The search's run folder (``runs/NAME``).
        options: Top K, seeds, target sensitivity, epochs.
        log: Where progress lines go.

    Returns:
        Where the results are, and the report's content.

    Raises:
        PneumoError: No search in ``run_dir``, no ranked trial, more than two classes, or
            every retraining diverged.
    """
    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.environment import describe_environment
    from pneumo_core.metrics import threshold_for_sensitivity, youden_threshold
    from results.export import export_model
    from results.report_html import write_report
    from results.search_summary import summarize_search
    from search.config import load_experiment

    options = options or FinalOptions()
    start = time.perf_counter()
    run_dir = Path(run_dir).expanduser().resolve()
    experiment_file = run_dir / "experiment.yaml"
    if not experiment_file.is_file():
        raise PneumoError(f"{run_dir}: no search here (no experiment.yaml)")
    experiment = load_experiment(experiment_file)
    board = read_csv_rows(run_dir / LEADERBOARD_FILE)
    rows = ranked_candidates(run_dir, board, max(options.top, options.ensemble))
    runs = retrain(experiment, rows, options, log)
    chosen = _best(runs)
    model, data, config = chosen.result.model, chosen.data, chosen.config
    objective = config.objective
    members = _kept(runs, options.ensemble) if options.ensemble else [chosen]
    if options.ensemble and len(members) < 2:
        log(f"ensemble: only {len(members)} usable configuration(s); a single model instead")
        members = [chosen]
    models = [m.result.model for m in members]
    external = None
    if config.data.external_root:
        from pneumo_core.data.external import prepare_external

        external = prepare_external(config.data, data.class_names)
        log(f"external check: {external.summary['images']} images from {external.root}")
    candidates = _candidate_models(members, models, options.tta)
    model = candidates[-1][1]  # the exported one
    if len(members) > 1:
        log(f"ensemble of {len(members)}: " + ", ".join(m.trial_id for m in members))
    comparison = None
    if len(candidates) > 1:
        log(f"side by side: {', '.join(c[0] for c in candidates)}")
        comparison = side_by_side(
            candidates,
            data,
            options.target_sensitivity,
            objective,
            external=external,
            suite_seed=experiment.search.seed if options.robustness else None,
        )

    side_by_side_probs = comparison["probs"] if comparison else {}

    def exported_probs(split: str, images: Callable[[], np.ndarray]) -> np.ndarray:
        # The exported model's probabilities: those of the side-by-side pass, else predicted.
        known = side_by_side_probs.get(split)
        return known if known is not None else predict_batches(model, images())

    val_labels = data.labels[data.splits["val"]]
    val_probs = exported_probs("val", lambda: data.arrays("val")[0])
    thresholds = {
        "operating": threshold_for_sensitivity(val_labels, val_probs, options.target_sensitivity),
        "0.5": 0.5,
        "youden": youden_threshold(val_labels, val_probs),
    }
    operating = thresholds["operating"]
    # The test split, once: nothing below chooses anything.
    test_images, test_labels = data.arrays("test")
    test_probs = exported_probs("test", lambda: test_images)
    log(f"threshold {operating:.4f} (validation sensitivity >= {options.target_sensitivity:g})")

    # Written into final.partial/ and renamed at the end: an interrupted run leaves the
    # previous final/ as it was, and a new one leaves no stale file of the old one.
    target = run_dir / FINAL_DIR
    folder = run_dir / f"{FINAL_DIR}.partial"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for split, probs in (("val", val_probs), ("test", test_probs)):
        _write_predictions(folder / PREDICTION_FILES[split], data, split, probs, operating)
    seed = experiment.search.seed

    def evaluate(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
        return binary_evaluation(
            labels,
            probs,
            operating,
            class_names=data.class_names,
            seed=seed,
            n_boot=options.n_boot,
            tau=objective.tau,
            w=objective.w,
        )

    test_eval = evaluate(test_labels, test_probs)
    groups = [subgroup_of(data.relpaths[i], int(data.labels[i])) for i in data.splits["test"]]
    report: dict[str, Any] = {
        "report_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "experiment": experiment.name,
        "data": data.summary,
        "search": summarize_search(run_dir, experiment.name, board),
        "final": {
            "options": dataclasses.asdict(options),
            "objective": objective.key,
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
        },
        "thresholds": {
            "chosen": "operating",
            "target_sensitivity": options.target_sensitivity,
            "validation": threshold_summary(val_labels, val_probs, thresholds),
            "test": threshold_summary(test_labels, test_probs, thresholds),
        },
        "test": {
            **test_eval,
            "curves": curves(test_labels, test_probs),
            "calibration": calibration(test_labels, test_probs),
            "subgroups": subgroup_evaluation(test_labels, test_probs, groups, operating),
        },
        "predictions": dict(PREDICTION_FILES),
        "environment": {
            **describe_environment(),
            "seeds": {
                "search": experiment.search.seed,
                "split": config.data.split_seed,
                "retrain": sorted({r.seed for r in runs}),
                "bootstrap": seed,
            },
        },
        "config": {"experiment": experiment.to_yaml_dict(), "final_model": to_dict(config)},
        "data_fingerprint": data.fingerprint,
    }
    if external is not None:
        external_probs = exported_probs("external", lambda: external.images)
        report["external"] = {**external.summary, **evaluate(external.labels, external_probs)}
    if options.robustness:
        from pneumo_core.robustness import robustness_table

        log("robustness suite on the test split")
        report["robustness"] = robustness_table(
            lambda images: predict_batches(model, images),
            test_images,
            test_labels,
            threshold=operating,
            seed=seed,
            tau=objective.tau,
            w=objective.w,
        )
    if options.ensemble or options.tta:
        report["ensemble"] = {
            "members": [m.trial_id for m in members],
            "tta_views": [list(v) for v in TTA_VIEWS] if options.tta else [],
            "comparison": comparison["comparison"] if comparison else [],
        }
        if options.ensemble and len(members) < 2:
            report["ensemble"]["note"] = (
                f"only {len(members)} usable configuration; the single best model is used"
            )
    report["gallery"] = _gallery(
        model, data, test_probs, operating, options.gallery, folder / "gallery"
    )
    card = _model_card(experiment, chosen, thresholds, test_eval, options.target_sensitivity)
    if len(members) > 1 or options.tta:
        card["name"] = f"{experiment.name}-ensemble{len(members)}" + ("-tta" if options.tta else "")
        card["ensemble"] = {
            "combination": "mean of the members' probabilities over the views (one Keras model)",
            "members": [{"trial_id": m.trial_id, "seed": m.seed} for m in members],
            "tta_views": [list(v) for v in TTA_VIEWS] if options.tta else [[0.0, 0.0]],
        }
    export_model(model, folder / "model", card)
    report["model"] = {"folder": "model", "card": "model/model_card.json"}
    report["seconds"] = round(time.perf_counter() - start, 1)
    report = _plain(report)
    (folder / REPORT_JSON).write_text(json.dumps(report, indent=2, allow_nan=False))
    write_report(report, folder)
    if target.exists():
        shutil.rmtree(target)
    folder.rename(target)
    return FinalOutcome(target, report)


def _plain(value: Any) -> Any:
    """JSON-ready values: NumPy scalars unwrapped, NaN and infinity as ``null``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
