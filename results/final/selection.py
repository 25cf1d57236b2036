"""Which retrained candidate the final stage keeps: ties within noise are ties.

The top trials of a search often differ by less than the validation split can resolve
(issue 16): picking by the fourth decimal of carved validation selects for that split.
:func:`select_run` first finds the candidates **tied with the best**: those whose
validation objective lies inside the best one's 95% bootstrap interval (class-stratified,
over the validation images). Among them, the rule decides:

- ``objective``: the best on validation (ties ignored; the behaviour before issue 16);
- ``simplest``: the one-standard-error rule's choice, the fewest parameters;
- ``family``: the best worst-family score, each tied candidate retrained once per
  acquisition family held out (:mod:`results.final.family_check`; 3 or 4 retrainings each).
- ``suite``: the best robustness-suite mean rw_auc on the **validation** images (every
  shift at severity 2, the same shifted images for every candidate; no retraining). Over
  the collected configurations this tie-break kept the external set's scores rising with
  the number of trials where the plain objective's levelled off (bench/RESULTS.md, issue
  16, "Which pick among more trials").
- ``site`` (only through ``final --site DIR --select-on-site``, never the default): the
  best recall-weighted AUC on the labelled site sample; the report and card call the model
  site-selected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from results.final.candidates import Retrained, best_run, usable
from results.final.options import SELECTION_RULES

__all__ = ["SELECTION_RULES", "SITE_RULE", "ranked_runs", "select_run", "tied_runs"]

#: The opt-in rule of ``final --select-on-site`` (not one of ``--select``'s choices).
SITE_RULE = "site"


_RESAMPLES = 500


def tied_runs(runs: list[Retrained], seed: int) -> tuple[list[Retrained], dict[str, Any]]:
    """The usable runs whose validation objective is inside the best run's interval.

    Args:
        runs: Every retraining (the best one must still hold its model).
        seed: Seed of the bootstrap.

    Returns:
        ``(tied, interval)``: the tied runs, best first (the best always among them), and
        the best run's ``value``, ``low``, ``high``.
    """
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import METRICS, bootstrap_interval

    best = best_run(runs)
    objective = best.config.objective
    metric = objective.model_key
    images, labels = best.data.arrays("val")
    interval: dict[str, Any] = {"metric": metric, "value": best.value}
    if metric not in METRICS:  # a suite objective: no interval over images; no ties
        return [best], {**interval, "low": math.nan, "high": math.nan}
    probs = predict_batches(best.result.model, images)
    low, high = bootstrap_interval(
        metric,
        labels,
        probs,
        seed=seed,
        n_boot=_RESAMPLES,
        tau=objective.tau,
        w=objective.w,
    )
    higher = objective.mode == "max"
    tied = [r for r in runs if usable(r) and (r.value >= low if higher else r.value <= high)]
    tied.sort(key=lambda r: -r.value if higher else r.value)
    if all(r is not best for r in tied):
        tied.insert(0, best)
    return tied, {**interval, "low": low, "high": high}


def select_run(
    runs: list[Retrained],
    rule: str,
    seed: int,
    log: Callable[[str], None],
    site_scores: Callable[[list[Retrained]], list[float]] | None = None,
) -> tuple[Retrained, dict[str, Any]]:
    """The run the final stage keeps, by ``rule`` among the runs tied with the best.

    Args:
        runs: Every retraining.
        rule: One of :data:`SELECTION_RULES`, or :data:`SITE_RULE`.
        seed: Seed of the bootstrap.
        log: Where progress lines go.
        site_scores: With :data:`SITE_RULE`: each tied run's site rw_auc
            (:func:`results.final.site.site_rw_aucs`).

    Returns:
        ``(chosen, selection)``: ``selection`` holds the rule, the best run's interval,
        every tied candidate with what the rule compared (and, for ``family``, each one's
        held-out family results, keyed ``trial_id/seed``).
    """
    best = best_run(runs)
    if rule == "objective":
        return best, {"rule": rule, "chosen": _key(best)}
    tied, interval = tied_runs(runs, seed)
    log(
        f"{len(tied)} candidate(s) tied with the best within its validation interval "
        f"[{interval['low']:.4f}, {interval['high']:.4f}]; choosing by {rule}"
    )
    entries = [
        {"run": _key(r), "trial_id": r.trial_id, "seed": r.seed, "value": r.value,
         "param_count": r.result.param_count}
        for r in tied
    ]  # fmt: skip
    ranked, held_out = _ranked(tied, entries, rule, seed, log, site_scores)
    chosen = ranked[0]
    log(f"chosen: trial {chosen.trial_id} seed {chosen.seed}")
    selection = {
        "rule": rule,
        "interval": interval,
        "tied": entries,
        "ranked": [_key(r) for r in ranked],
        "chosen": _key(chosen),
        "held_out": held_out,
        "site_selected": rule == SITE_RULE,
    }
    return chosen, selection


def _ranked(tied, entries, rule, seed, log, site_scores) -> tuple[list[Retrained], dict]:
    """The tied runs in the rule's order (each entry gains what the rule compared), and
    for ``family`` each run's held-out family results."""
    held_out: dict[str, Any] = {}
    if rule == "simplest":
        return sorted(tied, key=lambda r: (r.result.param_count, tied.index(r))), held_out
    if rule in ("suite", SITE_RULE):
        if rule == SITE_RULE and site_scores is None:
            raise ValueError("the site rule needs site_scores")
        scores = site_scores(tied) if rule == SITE_RULE else validation_suite_means(tied, seed)
        column = "site_rw_auc" if rule == SITE_RULE else "val_suite_mean_rw_auc"
        for entry, score in zip(entries, scores):
            entry[column] = score
        order = sorted(range(len(tied)), key=lambda i: (-_finite(scores[i]), i))
        return [tied[i] for i in order], held_out
    from results.final.family_check import held_out_families

    for run, entry in zip(tied, entries):
        held_out[_key(run)] = held_out_families(run, log)
        entry["family_worst_rw_auc"] = held_out[_key(run)]["worst_rw_auc"]
    ranked = sorted(
        tied, key=lambda r: (-_finite(held_out[_key(r)]["worst_rw_auc"]), tied.index(r))
    )
    return ranked, held_out


def ranked_runs(runs: list[Retrained], selection: dict[str, Any]) -> list[Retrained] | None:
    """The tied runs in the order the selection rule ranked them (None: the objective's).

    An ensemble takes its members from this order first (:func:`results.final.ensemble.
    ensemble_members`), so the rule that chose the kept model also chooses its partners.
    """
    if not selection.get("ranked"):
        return None
    by_key = {_key(r): r for r in runs}
    return [by_key[key] for key in selection["ranked"] if key in by_key]


def validation_suite_means(runs: list[Retrained], seed: int) -> list[float]:
    """Each run's robustness-suite mean rw_auc on its validation images (severity 2).

    The shifted images are made once per data configuration (seeded by ``seed``) and
    scored by every run that takes them: runs at other resolutions see the same validation
    patients, shifted alike, at their own size. Runs whose model was released score NaN.
    """
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.robustness import memoized_shift, robustness_table

    shifts: dict[Any, Any] = {}  # data configuration -> its memoized shift
    means = []
    for run in runs:
        if run.result.model is None:
            means.append(math.nan)
            continue
        images, labels = run.data.arrays("val")
        shift_once = shifts.setdefault(run.config.data, memoized_shift())
        objective = run.config.objective
        summary = robustness_table(
            lambda batch, model=run.result.model: predict_batches(model, batch),
            images,
            labels,
            threshold=0.5,  # rw_auc does not depend on it
            seed=seed,
            severities=(2,),
            tau=objective.tau,
            w=objective.w,
            shift=shift_once,
        )["summary"]
        means.append(float(summary["mean_rw_auc"]))
    return means


def _key(run: Retrained) -> str:
    return f"{run.trial_id}/{run.seed}"


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf
