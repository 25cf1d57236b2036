"""Ensembles and test-time augmentation: candidate models side by side.

An ensemble is one Keras model averaging its members' probabilities (optionally over
shifted views of the image, :data:`TTA_VIEWS`), so it serves like a single exported model.
:func:`side_by_side` scores each candidate on validation, test, the external set and the
robustness suite, each at its own validation threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from results.final.candidates import Retrained, kept_runs

__all__ = [
    "TTA_VIEWS",
    "build_ensemble",
    "candidate_models",
    "ensemble_members",
    "greedy_members",
    "side_by_side",
]


def ensemble_members(
    runs: list[Retrained],
    chosen: Retrained,
    ensemble: int,
    log: Callable[[str], None],
    greedy: bool = False,
    ranked: list[Retrained] | None = None,
) -> list[Retrained]:
    """The runs the exported model is made of: ``[chosen]``, or the ensemble's members.

    With ``ensemble`` >= 2 but fewer than two usable configurations, the single best.
    With ``greedy``, the members are chosen by :func:`greedy_members` (a run may count
    more than once: its weight). With ``ranked`` (a selection rule's order of the tied
    runs, :func:`results.final.selection.ranked_runs`), the members are taken from that order
    first, then from the rest by validation objective: one run per trial, each on the
    chosen run's images.
    """
    if not ensemble:
        return [chosen]
    if greedy:
        members = greedy_members(runs, chosen, ensemble, log)
        return members if len(members) > 1 else [chosen]
    if ranked:
        members = [chosen]
        for run in [*ranked, *kept_runs(runs, len(runs))]:
            fits = run.config.data == chosen.config.data and len(members) < ensemble
            if fits and run.trial_id not in {m.trial_id for m in members}:
                members.append(run)
    else:
        members = kept_runs(runs, ensemble)
    if len(members) < 2:
        log(f"ensemble: only {len(members)} usable configuration(s); a single model instead")
        return [chosen]
    return members


def greedy_members(
    runs: list[Retrained], chosen: Retrained, size: int, log: Callable[[str], None]
) -> list[Retrained]:
    """Caruana et al.'s ensemble selection (2004): greedy forward steps, with replacement.

    Starting from ``chosen``, each step adds the run (any usable retraining on the same
    images, one already in included) whose addition gives the mean probability the best
    validation objective; after ``size`` picks the best prefix is kept. Members picked
    twice weigh twice. Written here: the rule is ten lines over the validation
    probabilities, and no maintained library implements it for Keras models.

    Returns:
        The members in pick order (``[chosen]`` when no addition helps).
    """
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import METRICS, compute_metrics

    objective = chosen.config.objective
    metric = objective.metric
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    pool = [
        r
        for r in runs
        if r.result.model is not None
        and np.isfinite(r.value)
        and r.config.data == chosen.config.data
    ]
    images, labels = chosen.data.arrays("val")
    probs = {id(r): predict_batches(r.result.model, images) for r in pool}

    def score(members: list[Retrained]) -> float:
        mean = np.mean([probs[id(m)] for m in members], axis=0)
        value = compute_metrics(labels, mean, tau=objective.tau, w=objective.w, names=[metric])
        return sign * value[metric]

    picked = [chosen]
    history = [score(picked)]
    for _ in range(size - 1):
        best = max(pool, key=lambda r: (score([*picked, r]), -pool.index(r)))
        picked.append(best)
        history.append(score(picked))
    keep = int(np.argmax(history)) + 1  # the first best prefix
    log(
        f"greedy ensemble selection on validation {metric}: "
        + ", ".join(f"{m.trial_id}/{m.seed}" for m in picked[:keep])
        + f" ({sign * history[keep - 1]:.4f}; the best model alone {sign * history[0]:.4f})"
    )
    return picked[:keep]


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
    named: set[int] = set()
    for member in models:
        if id(member) not in named:  # a member picked twice is called twice: its weight
            member.name = f"member_{len(named) + 1}"  # nested models need distinct names
            named.add(id(member))
        outputs += [member(view) for view in views]
    if len(outputs) == 1:
        return keras.Model(inputs, outputs[0], name="single")
    mean = keras.layers.Average(name="mean_probability")(outputs)
    return keras.Model(inputs, mean, name="ensemble_tta" if tta else "ensemble")


def candidate_models(members, models, tta: bool) -> list[tuple[str, Any, Any]]:
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
    from pneumo_core.robustness import memoized_shift, robustness_table

    val_images, val_labels = data.arrays("val")
    test_images, test_labels = data.arrays("test")
    shift_once = memoized_shift()  # the same shifted test images for every candidate

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
