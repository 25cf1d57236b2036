"""Retrain and candidates: the leaderboard's top configurations, retrained from scratch.

Each configuration is retrained with N seeds on the train split, exactly as a trial
trains (seed ``search.seed + i``, so seed 0 repeats the trial); the run best on validation
is chosen, and with an ensemble the best run of each of the K best configurations.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_contracts.run_folder import LEADERBOARD_FILE
from pneumo_contracts.status import TrialStatus
from pneumo_core.train.config import EPOCH_TIME_LIMIT
from pneumo_errors import PneumoError
from results.board.leaderboard import is_finite, row_params
from results.final.options import FinalOptions
from results.final.record import SearchRecord

__all__ = [
    "Retrained",
    "best_run",
    "epoch_progress",
    "kept_runs",
    "ranked_candidates",
    "retrain",
    "usable",
]


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


def ranked_candidates(
    run_dir: Path,
    rows: list[dict[str, str]],
    top: int,
    max_epoch_s: float = 0.0,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, str]]:
    """The ``top`` best ranked trials whose configurations differ (a repeat is skipped).

    With ``max_epoch_s`` (the final stage's cost guard), a trial the search's time limit
    stopped (``stop_reason`` ``epoch_time_limit``) or whose median epoch took longer than
    ``max_epoch_s`` is skipped too, so K retrainings cost at most K x epochs x that limit.

    Args:
        run_dir: The search's run folder (named in errors).
        rows: Its leaderboard rows, best first.
        top: How many to return at most.
        max_epoch_s: The per-epoch limit (0 = none).
        log: Where a line per trial skipped for its cost goes.

    Raises:
        PneumoError: No leaderboard, or no trial with a finite objective (that fits the
            limit).
    """
    if not rows:
        raise PneumoError(f"{run_dir / LEADERBOARD_FILE}: missing or empty (run a search first)")
    ranked = [row for row in rows if row.get("rank")]
    if not ranked:
        raise PneumoError(f"{run_dir / LEADERBOARD_FILE}: no trial has a finite objective")
    if max_epoch_s > 0:
        fits = [row for row in ranked if not _too_slow(row, max_epoch_s)]
        if not fits:
            raise PneumoError(
                f"{run_dir / LEADERBOARD_FILE}: no ranked trial fits the {max_epoch_s:g} s "
                "per-epoch limit (pass --max-epoch-s 0 to retrain regardless)"
            )
        # the skipped trials that would have been retrained, had they fitted
        last = ranked.index(fits[min(top, len(fits)) - 1])
        for row in ranked[:last]:
            if row not in fits and log is not None:
                log(
                    f"skipped trial {row['trial_id']} (rank {row['rank']}): median epoch "
                    f"{row.get('median_epoch_s') or '?'} s, stop reason "
                    f"{row.get('stop_reason') or '-'}: over the {max_epoch_s:g} s per-epoch limit"
                )
        ranked = fits
    distinct: dict[str, dict[str, str]] = {}
    for row in ranked:
        distinct.setdefault(json.dumps(row_params(row), sort_keys=True, default=str), row)
    return list(distinct.values())[:top]


def _too_slow(row: dict[str, str], max_epoch_s: float) -> bool:
    """Whether a leaderboard row's trial was stopped, or ran, past the per-epoch limit."""
    if row.get("stop_reason") == EPOCH_TIME_LIMIT:
        return True
    median = row.get("median_epoch_s")
    return is_finite(median) and float(median) > max_epoch_s


def retrain_config(record: SearchRecord, params: dict[str, Any], seed: int, options):
    """A leaderboard configuration as the final stage retrains it: the options' epochs,
    resolution and crop scale replace the search's where given."""
    config = record.trial_config(params, seed=seed)
    if options.epochs:
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, epochs=options.epochs)
        )
    if options.image_size:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, image_size=options.image_size)
        )
    if options.crop_scale is not None:
        config = dataclasses.replace(
            config, augment=dataclasses.replace(config.augment, crop_scale=options.crop_scale)
        )
    return config


def retrain(
    record: SearchRecord,
    rows: list[dict[str, str]],
    options: FinalOptions,
    log: Callable[[str], None],
) -> list[Retrained]:
    """Retrains each leaderboard row's configuration ``options.seeds`` times.

    Args:
        record: What the search handed over (its seed and base configuration).
        rows: Leaderboard rows (:func:`ranked_candidates`).
        options: ``seeds``, ``epochs`` (0 = the experiment's), ``image_size`` (None = the
            experiment's) and ``ensemble`` (how many models stay in memory).
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
            seed = record.seed + i
            config = retrain_config(record, params, seed, options)
            if config.data not in prepared:
                prepared[config.data] = prepare_data(config.data)
            data = prepared[config.data]
            if data.num_classes != 2:
                raise PneumoError(
                    f"final supports two classes (negative, positive); {data.config.root} "
                    f"has {data.num_classes}: {', '.join(data.class_names)}"
                )
            label = f"retrain {len(runs) + 1}/{total}: trial {row['trial_id']} seed {seed}"
            result = train_model(config, data, on_epoch=epoch_progress(label, config, log))
            metric = config.objective.model_key
            value = result.best_metrics.get(metric, float("nan"))
            log(
                f"retrain {len(runs) + 1}/{total}: trial {row['trial_id']} seed {seed}: "
                f"{result.status}, best epoch {result.best_epoch}, "
                f"validation {metric} {value:.4f} ({result.seconds:.0f} s)"
            )
            runs.append(Retrained(row["trial_id"], seed, config, data, result, value))
            if options.select != "objective" or options.greedy:
                continue  # a rule other than the objective may choose any of them
            keep = kept_runs(runs, options.ensemble)
            for run in runs:
                if all(run is not k for k in keep):
                    run.result.model = None  # only what can still be used stays in memory
    return runs


def epoch_progress(label: str, config: Any, log: Callable[[str], None]) -> Callable[[Any], None]:
    """An ``on_epoch`` hook for :func:`pneumo_core.train.loop.train_model` that logs a line
    per epoch as it ends (a 16-minute retrain is not silent until it finishes).

    Args:
        label: What is being retrained (``retrain 1/3: trial ID seed S``).
        config: Its training configuration (epoch budget, objective).
        log: Where the lines go.
    """
    key = f"val_{config.objective.model_key}"
    epochs = config.training.epochs

    def hook(state: Any) -> None:
        value = state.row.get(key, float("nan"))
        seconds = state.row.get("epoch_seconds", float("nan"))
        loss = state.row.get("loss", float("nan"))
        log(
            f"{label}: epoch {state.epoch}/{epochs}, loss {loss:.4f}, "
            f"validation {config.objective.model_key} {value:.4f} ({seconds:.0f} s)"
        )

    return hook


def kept_runs(runs: list[Retrained], ensemble: int) -> list[Retrained]:
    """The best run, or with an ensemble its best members so far (one per trial).

    A member takes the same images as the best run (the same data configuration); the
    best run is always among them; at most ``ensemble``, best first.
    """
    if not any(usable(r) for r in runs):
        return []
    best = best_run(runs)
    if ensemble < 2:
        return [best]
    sign = 1.0 if best.config.objective.mode == "max" else -1.0
    per_trial: dict[str, Retrained] = {}
    for run in runs:  # a member must take the same images as the best (same data config)
        if usable(run) and run.config.data == best.config.data:
            held = per_trial.get(run.trial_id)
            if held is None or sign * run.value > sign * held.value:
                per_trial[run.trial_id] = run
    per_trial[best.trial_id] = best  # ties: the model evaluated as the single best stays
    return sorted(per_trial.values(), key=lambda r: -sign * r.value)[:ensemble]


def usable(run: Retrained) -> bool:
    """Whether a retraining can be chosen: it did not diverge and was scored."""
    return run.result.status != TrialStatus.NAN_LOSS and bool(np.isfinite(run.value))


def best_run(runs: list[Retrained]) -> Retrained:
    """The usable run with the best validation objective (the first wins ties).

    Raises:
        PneumoError: Every retraining diverged.
    """
    candidates = [r for r in runs if usable(r)]
    if not candidates:
        raise PneumoError("every retraining diverged (NaN loss); nothing to evaluate")
    mode = candidates[0].config.objective.mode
    sign = 1.0 if mode == "max" else -1.0
    return max(candidates, key=lambda r: sign * r.value)  # first wins ties (rank, then seed)
