"""The test-site check (``final --site DIR``): the exported model on another site's sample.

A labelled folder from the deployment site (``NORMAL/``, ``PNEUMONIA/``) is scored after
everything the final stage chooses has been chosen: the threshold comes from validation,
the model and the ensemble's members from the search's data. Nothing here feeds back into
those choices (``tests/results/test_site.py`` checks it); the section only measures:

- AUC with a bootstrap interval;
- sensitivity, specificity and accuracy at the **validation** threshold (Wilson intervals),
  what the exported model does there as shipped;
- the specificity the model's ranking allows at the target sensitivity with the **site's
  own** threshold (a bootstrap interval that re-picks the threshold in each resample): how
  much of the gap is the threshold and how much the ranking;
- the same per acquisition family;
- how many of the site's patients are also in the training split (their images would make
  the site look easier than it is).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_errors import DataError
from results.final.family_check import family_rates

__all__ = ["SiteSample", "load_site", "site_check", "site_rw_aucs"]


@dataclasses.dataclass(frozen=True)
class SiteSample:
    """A labelled sample of another site.

    Attributes:
        images: The :class:`pneumo_core.data.external.ExternalSet` (images, labels, paths).
        patients: Its patient ids (as the dataset's ``patient_regex`` reads file names).
    """

    images: Any
    patients: frozenset[str]


def load_site(folder: str | Path, data_config, class_names) -> SiteSample:
    """The site sample, decoded as the chosen model's data is.

    Args:
        folder: ``FOLDER/{NORMAL,PNEUMONIA}/*`` (or the train/val/test layout: all of it).
        data_config: The chosen model's data configuration (image size, colour, aspect).
        class_names: The training classes; the site must have the same.

    Raises:
        DataError: The folder is missing, has other classes or no readable image.
    """
    from pneumo_core.data.external import external_patients, prepare_external

    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: the --site folder does not exist")
    config = dataclasses.replace(data_config, external_root=str(root), external_split="")
    return SiteSample(prepare_external(config, class_names), external_patients(config))


def site_check(
    site: SiteSample,
    probs: np.ndarray,
    threshold: float,
    *,
    target: float,
    train_patients: set[str] | frozenset[str],
    class_names,
    seed: int,
    n_boot: int,
) -> dict[str, Any]:
    """The report's ``site`` section.

    Args:
        site: The site sample (:func:`load_site`).
        probs: The exported model's probabilities on it, in its order.
        threshold: The operating threshold chosen on validation.
        target: The target sensitivity (the threshold's own).
        train_patients: Patient ids of the training split.
        class_names: ``(negative, positive)``.
        seed: Seed of the bootstraps.
        n_boot: Bootstrap resamples.

    Returns:
        ``folder``, ``images``, ``prevalence``, ``at_validation_threshold`` (a
        :func:`results.report.evaluation.binary_evaluation`), ``site_threshold``
        (the threshold and specificity at the target sensitivity, with its interval),
        ``families`` and ``patients_in_training``.
    """
    from pneumo_core.metrics import (
        bootstrap_statistic,
        specificity_at_sensitivity,
        threshold_for_sensitivity,
    )
    from results.report.evaluation import binary_evaluation

    y = np.asarray(site.images.labels).astype(int)
    p = np.asarray(probs, dtype=np.float64)
    if len(set(y.tolist())) < 2:
        raise DataError(f"{site.images.root}: the site sample needs images of both classes")
    evaluation = binary_evaluation(
        y, p, threshold, class_names=class_names, seed=seed, n_boot=n_boot
    )
    own = threshold_for_sensitivity(y, p, target)
    low, high = bootstrap_statistic(
        lambda yy, pp: specificity_at_sensitivity(yy, pp, target), y, p, seed=seed, n_boot=n_boot
    )
    shared = site.patients & frozenset(train_patients)
    return {
        "folder": site.images.root,
        "images": len(y),
        "prevalence": float(y.mean()),
        "counts": {class_names[c]: int((y == c).sum()) for c in (0, 1)},
        "target_sensitivity": target,
        "at_validation_threshold": evaluation,
        "site_threshold": {
            "threshold": own,
            "sensitivity": float(np.mean(p[y == 1] >= own)),
            "specificity": specificity_at_sensitivity(y, p, target),
            "specificity_low": low,
            "specificity_high": high,
            "method": f"bootstrap ({n_boot}), threshold re-picked in each resample",
        },
        "families": family_rates(site.images.relpaths, y, p, threshold, class_names),
        "patients_in_training": len(shared),
        "used_for_choices": False,
    }


def site_rw_aucs(runs: list, folder: str | Path, log: Callable[[str], None]) -> list[float]:
    """Each run's recall-weighted AUC on the site sample (``final --select-on-site``).

    The opt-in exception to "the site chooses nothing": the tied candidates are ranked by
    it. The sample is decoded once per data configuration, like each run's own data.

    Args:
        runs: Retrained candidates (:class:`results.final.candidates.Retrained`); a run
            whose model was released scores NaN.
        folder: The site sample.
        log: Where progress lines go.

    Returns:
        One rw_auc per run (its objective's ``tau`` and ``w``), in order.
    """
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import rw_auc

    samples: dict[Any, SiteSample] = {}
    scores = []
    for run in runs:
        if run.result.model is None:
            scores.append(math.nan)
            continue
        site = samples.get(run.config.data)
        if site is None:
            site = samples[run.config.data] = load_site(
                folder, run.data.config, run.data.class_names
            )
        objective = run.config.objective
        probs = predict_batches(run.result.model, site.images.images)
        labels = np.asarray(site.images.labels).astype(int)
        scores.append(float(rw_auc(labels, probs, tau=objective.tau, w=objective.w)))
        log(f"site selection: trial {run.trial_id} seed {run.seed} site rw_auc {scores[-1]:.4f}")
    return scores
