"""The model card of the exported model: what a clinical reader needs, and how to serve it.

Its sections follow the model-card, CLAIM and TRIPOD-AI items: intended and out-of-scope
use, training data (population, provenance), test prevalence and how PPV and NPV move with
it, results with intervals, subgroups, calibration, robustness, known limitations; then the
input, the one preprocessing, the threshold and the configuration. The export adds hashes
of every artifact and the serving examples (:func:`results.serving.export.export_model`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pneumo_core.configuration import to_dict
from pneumo_core.data.decode import PREPROCESSING

__all__ = ["INTENDED_USE", "LIMITATIONS", "OUT_OF_SCOPE", "model_card", "ppv_npv"]

INTENDED_USE = (
    "Research and decision support: estimating the probability of pneumonia on a frontal "
    "(AP/PA) pediatric chest X-ray, for review by a clinician who sees the image. A second "
    "reader, not a diagnosis."
)
OUT_OF_SCOPE = [
    "stand-alone diagnosis, triage or treatment decisions without a clinician",
    "adults, lateral views, CT, or images from other modalities",
    "other hospitals, scanners or populations without a local validation first",
    "findings other than pneumonia (tuberculosis, COVID-19, effusion, lines...): "
    "the model knows two classes only",
]
LIMITATIONS = [
    "Validation and test here are patient-grouped splits carved from the same collection as "
    "training. On the public Kermany test split (a later set, checked by a third expert) "
    "models of this recipe scored clearly lower, mostly in specificity (0.71-0.83 against "
    "0.98-0.99 on the carved split): expect more false positives on new data.",
    "One hospital, pediatric patients (one to five years old), retrospective: performance "
    "on other sites, ages and equipment is unknown.",
    "Training labels come from two graders; label noise is likely. Virus and bacteria are "
    "one class here (see the subgroups).",
    "PPV and NPV depend on prevalence: the test split's is far above most clinical "
    "settings (see ppv_npv_by_prevalence).",
    "The operating threshold was chosen on validation for a target sensitivity; at another "
    "site it should be checked, and set again if needed, on local data.",
]
#: Prevalences of the PPV/NPV table.
PREVALENCES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
DATASET_PROVENANCE = (
    "Kermany, Zhang, Goldbaum (2018), Labeled Optical Coherence Tomography (OCT) and Chest "
    "X-Ray Images for Classification, Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0: "
    "pediatric patients aged one to five from Guangzhou Women and Children's Medical Center, "
    "graded by two expert physicians (this describes the public dataset the tool is built "
    "for; 'files' below describes what was actually used)"
)


def ppv_npv(sensitivity: float, specificity: float, prevalence: float) -> dict[str, float]:
    """PPV and NPV at a prevalence, from sensitivity and specificity (Bayes' rule)."""
    tp = sensitivity * prevalence
    fp = (1 - specificity) * (1 - prevalence)
    tn = specificity * (1 - prevalence)
    fn = (1 - sensitivity) * prevalence
    return {
        "prevalence": prevalence,
        "ppv": tp / (tp + fp) if tp + fp > 0 else float("nan"),
        "npv": tn / (tn + fn) if tn + fn > 0 else float("nan"),
    }


def _normalization(config) -> str:
    from pneumo_core.models import get_model_spec, model_params
    from pneumo_core.models.transfer import BACKBONES

    params = model_params(config.model.name, config.model.params)
    mode = getattr(params, "normalization", None)
    if mode is None and config.model.name in BACKBONES:
        mode = BACKBONES[config.model.name].normalization
    meaning = {
        "unit": "pixels / 255, to [0, 1]",
        "tf": "pixels / 127.5 - 1, to [-1, 1] (the backbone's own)",
        "per_image": "each image to zero mean and unit variance",
        "torch": "pixels / 255, then ImageNet mean and standard deviation",
        "caffe": "RGB to BGR, ImageNet mean subtracted",
        "none": "none",
    }.get(str(mode), str(mode))
    family = get_model_spec(config.model.name).family
    return f"{mode}: {meaning}, inside the model ({family}); the input stays in [0, 255]"


def _interval(metric: dict[str, Any]) -> dict[str, Any]:
    return {k: metric.get(k) for k in ("value", "low", "high", "method")}


def model_card(
    name: str,
    run: Any,
    thresholds: dict[str, float],
    report: dict[str, Any],
    target: float,
    *,
    members: list[Any] | None = None,
    tta_views: tuple[tuple[float, float], ...] = (),
) -> dict[str, Any]:
    """The exported model's card (``model_card.json``; the export adds hashes and serving).

    Args:
        name: The experiment's name.
        run: The chosen retraining (a :class:`results.final.candidates.Retrained`: its
            configuration and data describe the input).
        thresholds: ``operating`` and the alternatives, chosen on validation.
        report: The final stage's report so far (test results, subgroups, calibration,
            robustness, external check, data summary).
        target: The validation sensitivity the operating threshold was chosen for.
        members: The ensemble's members (more than one makes the card an ensemble's).
        tta_views: The views the exported model averages over
            (:data:`results.final.ensemble.TTA_VIEWS`); empty: no test-time augmentation.
    """
    from pneumo_core.environment import package_versions

    data, config = run.data, run.config
    card: dict[str, Any] = {
        "name": f"{name}-{run.trial_id}-seed{run.seed}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "intended_use": INTENDED_USE,
        "out_of_scope": list(OUT_OF_SCOPE),
        "training_data": _training_data(data),
        "class_names": list(data.class_names),
        "positive_class": data.class_names[1],
        "output": "sigmoid probability of the positive class, shape (N, 1)",
        "input": _input(data),
        "normalization": _normalization(config),
        "threshold": {
            "value": thresholds["operating"],
            "chosen_by": f"highest validation threshold with sensitivity >= {target:g}",
            "alternatives": {k: v for k, v in thresholds.items() if k != "operating"},
        },
        "test_metrics": {k: v["value"] for k, v in report["test"]["metrics"].items()},
        "test": _test_block(report["test"], data),
        "limitations": list(LIMITATIONS),
        "config": to_dict(config),
        "data_fingerprint": data.fingerprint,
        "versions": package_versions(),
    }
    card.update(_checks(report))
    members = members or [run]
    tta = bool(tta_views)
    if len(members) > 1 or tta:
        card["name"] = f"{name}-ensemble{len(members)}" + ("-tta" if tta else "")
        card["ensemble"] = {
            "combination": "mean of the members' probabilities over the views (one Keras model)",
            "members": [{"trial_id": m.trial_id, "seed": m.seed} for m in members],
            "tta_views": [list(v) for v in tta_views] if tta else [[0.0, 0.0]],
        }
    return card


def _training_data(data: Any) -> dict[str, Any]:
    """Where the training images came from and which files were used."""
    return {
        "provenance": DATASET_PROVENANCE,
        "files": {
            "root": data.summary.get("root"),
            "splits": data.summary.get("splits"),
            "skipped_unreadable": data.summary.get("problems", {}).get("skipped_count", 0),
            "split": "patient-grouped (no patient in two splits)",
        },
        "fingerprint": data.fingerprint,
    }


def _input(data: Any) -> dict[str, Any]:
    """What the model takes: size, channels, colour mode, aspect and the preprocessing."""
    return {
        "size": data.config.image_size,
        "channels": data.input_shape[-1],
        "color_mode": data.config.color_mode,
        "aspect": data.config.aspect,
        "dtype": "float32",
        "value_range": [0, 255],
        "preprocessing": PREPROCESSING,
    }


def _test_block(test: dict[str, Any], data: Any) -> dict[str, Any]:
    """The test split's results with intervals, prevalence, PPV/NPV, subgroups, calibration."""
    metrics = test["metrics"]
    sens, spec = metrics["sensitivity"]["value"], metrics["specificity"]["value"]
    positives = int(sum(1 for i in data.splits["test"] if data.labels[i] == 1))
    return {
        "images": test["n"],
        "positives": positives,
        "prevalence": positives / test["n"] if test["n"] else None,
        "metrics_with_95_intervals": {k: _interval(v) for k, v in metrics.items()},
        "ppv_npv_by_prevalence": [ppv_npv(sens, spec, p) for p in PREVALENCES],
        "ppv_npv_note": (
            "PPV and NPV above are the test split's, at its prevalence; this table gives "
            "them at other prevalences from the test sensitivity and specificity"
        ),
        "subgroups": test.get("subgroups", {}),
        "calibration": {
            k: test.get("calibration", {}).get(k) for k in ("ece", "brier", "brier_interval")
        },
    }


def _checks(report: dict[str, Any]) -> dict[str, Any]:
    """The card's blocks for the checks that ran: site, pixel scope, selection, external
    set and robustness suite."""
    out: dict[str, Any] = {}
    if "site" in report:
        site = report["site"]
        out["site_check"] = {
            "folder": site["folder"],
            "images": site["images"],
            "prevalence": site["prevalence"],
            "at_validation_threshold": {
                k: _interval(v)
                for k, v in site["at_validation_threshold"]["metrics"].items()
                if k in ("auc", "sensitivity", "specificity", "accuracy")
            },
            "site_threshold": site["site_threshold"],
            "used_for_choices": site.get("used_for_choices", False),
        }
    if "pixel_scope" in report:
        out["pixel_scope"] = {
            **report["pixel_scope"],
            "file": "pixel_scope.npz",
            "used_by": "predict: in_scope/scope_reason columns; --strict gives no probability",
        }
    selection = report.get("selection") or {}
    out["selection"] = {
        "rule": selection.get("rule", "objective"),
        "site_selected": bool(selection.get("site_selected")),
    }
    if "external" in report:
        external = report["external"]
        out["external_check"] = {
            "images": external.get("n"),
            "metrics": {k: _interval(v) for k, v in external.get("metrics", {}).items()},
        }
    if report.get("robustness"):
        out["robustness"] = report["robustness"].get("summary", {})
    return out
