"""Family-out training: one model per acquisition family held out, trained in lockstep.

A configuration that scores well on validation carved from its own training data may only
have learned the collection (issue 16). Here it is scored the way a shift would score it:
for each acquisition family of :mod:`pneumo_core.data.families`, one model trains without
that family (and without its patients) and is scored on it. The search's objective is the
mean or the worst over families.

The fold models train **in lockstep**, one epoch each in turn, so that a search trial can
report one combined score per epoch (ASHA compares trials epoch by epoch) and checkpoint
every fold after each epoch. Each fold runs :func:`~pneumo_core.train.loop.train_model`
unchanged (its phases, early stopping, NaN guard) in a thread of its own; only one thread
runs at a time, handing over at every epoch end, so the folds never compete for the CPUs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pneumo_contracts.status import TrialStatus
from pneumo_core.data.dataset import PreparedData
from pneumo_core.data.families import family_folds
from pneumo_core.metrics import METRICS
from pneumo_core.train.config import TIME_LIMIT_KEY, TrainConfig
from pneumo_core.train.loop import (
    TIME_LIMITED,
    EpochState,
    ResumeState,
    TrainResult,
    best_epoch_metrics,
    train_model,
)
from pneumo_errors import TrainingError

__all__ = [
    "FamilyEpoch",
    "FamilyOutResult",
    "family_fold_data",
    "family_scores",
    "load_family_resume",
    "train_family_folds",
]

_STATE_FILE = "family_state.json"


def family_fold_data(data: PreparedData) -> list[tuple[str, PreparedData]]:
    """The data of each family-out fold: ``(family, data)`` with its own train and val.

    The train split is the pool (a fold trains on it without the held-out family and its
    patients); the validation split lends each fold the other class's images. The test
    split is left alone.

    Raises:
        TrainingError: The dataset has no two families to hold out (file names without the
            Kermany families, or more than two classes).
    """
    if data.num_classes != 2:
        raise TrainingError(
            f"family-out needs two classes; {data.config.root} has {data.num_classes}"
        )
    folds = family_folds(
        data.relpaths, data.patients, data.labels, data.splits["train"], data.splits["val"]
    )
    # a fold must still train on both classes and score both (a class of one family
    # cannot be held out)
    usable = [
        f
        for f in folds
        if len(set(data.labels[f.train].tolist())) == 2
        and len(set(data.labels[f.val].tolist())) == 2
    ]
    if len(usable) < 2:
        raise TrainingError(
            f"{data.config.root}: family-out validation needs file names of acquisition "
            "families (IM-, NORMAL2-IM-, _bacteria_, _virus_), two in a class, so a fold "
            f"can hold one out; found {len(usable)} such fold(s)"
        )
    return [
        (
            fold.family,
            dataclasses.replace(data, splits={**data.splits, "train": fold.train, "val": fold.val}),
        )
        for fold in usable
    ]


@dataclass
class FamilyEpoch:
    """What :func:`train_family_folds`' ``on_epoch`` receives after every fold's epoch.

    Duck-types :class:`~pneumo_core.train.loop.EpochState` where the search reads it
    (``epoch``, ``row``, ``best_epoch``, ``best_value``, ``finished``, ``model``).

    Attributes:
        epoch: 1-based lockstep epoch just finished.
        row: ``val_family_<reduce>_<metric>`` (the objective), ``val_family_<family>_<metric>``
            per family, and every other validation metric averaged over the folds.
        history: All combined rows so far.
        best_epoch: Epoch of the best combined objective.
        best_value: The best combined objective.
        finished: Every fold has finished.
        states: Each unfinished fold's :class:`EpochState` (to checkpoint it).
        summaries: Each fold's history and best so far (finished folds included).
        model: One fold's model (for its parameter count).
    """

    epoch: int
    row: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    best_value: float | None
    finished: bool
    states: dict[str, EpochState]
    summaries: dict[str, dict[str, Any]]
    model: Any = None

    def save(self, folder: str | Path, previous: str | Path | None = None) -> None:
        """Writes every unfinished fold's checkpoint (in ``<folder>/<family>/``) and the
        folds' summaries, so :func:`load_family_resume` can pick up from here."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for family, state in self.states.items():
            before = Path(previous) / family if previous is not None else None
            state.save(folder / family, previous=before if before and before.is_dir() else None)
        payload = {"epoch": self.epoch, "history": self.history, "folds": self.summaries}
        (folder / _STATE_FILE).write_text(json.dumps(payload))


@dataclass
class FamilyOutResult:
    """The outcome of :func:`train_family_folds`.

    Attributes:
        results: Each fold's :class:`TrainResult` (fold models stay in memory), in fold
            order; a fold finished before a resume has ``model`` ``None``.
        history: The combined rows, one per lockstep epoch.
        best_epoch: Epoch of the best combined objective.
        best_value: The best combined objective.
        diverged: A fold's NaN message ("" when none diverged).
    """

    results: dict[str, TrainResult]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    diverged: str = ""


def family_scores(
    summaries: Mapping[str, Mapping[str, Any]], metric: str, reduce: str
) -> dict[str, float]:
    """The combined scores of fold models at their best epochs so far.

    Each fold stands by its best validation epoch (the weights it would keep), so a fold
    that has stopped keeps counting with its best score.

    Args:
        summaries: Family -> ``{"best_metrics": {metric: value}}``.
        metric: The metric combined.
        reduce: ``mean`` or ``worst``.

    Returns:
        ``family_<reduce>_<metric>``, ``family_<family>_<metric>`` per family, and the mean
        over folds of every other metric (so the leaderboard keeps its columns).
    """
    higher = METRICS[metric].higher_is_better
    per_family = {f: s["best_metrics"].get(metric, math.nan) for f, s in summaries.items()}
    values = np.array(list(per_family.values()), dtype=np.float64)
    if reduce == "mean":
        combined = float(np.mean(values))
    else:
        combined = float(np.min(values) if higher else np.max(values))
    shared = set.intersection(*(set(s["best_metrics"]) for s in summaries.values()))
    row = {
        name: float(np.mean([float(s["best_metrics"][name]) for s in summaries.values()]))
        for name in sorted(shared)
    }
    row[f"family_{reduce}_{metric}"] = combined
    row.update({f"family_{f}_{metric}": float(v) for f, v in per_family.items()})
    return row


def load_family_resume(folder: str | Path) -> tuple[dict[str, Any] | None, list[str]]:
    """Reads a family-out checkpoint written by :meth:`FamilyEpoch.save`.

    Returns:
        ``(resume, problems)``: ``resume`` holds ``history``, ``folds`` (the summaries) and
        ``states`` (each unfinished fold's :class:`ResumeState`), or is ``None`` when the
        checkpoint cannot be used (train from the start); ``problems`` names what was
        passed over.
    """
    folder = Path(folder)
    try:
        payload = json.loads((folder / _STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        return None, [f"{folder.name}: {exc}"]
    states: dict[str, ResumeState] = {}
    problems: list[str] = []
    for family, summary in payload["folds"].items():
        if summary.get("finished"):
            continue
        state, passed = ResumeState.load_latest_valid(folder / family)
        problems += [f"{family}: {p}" for p in passed]
        if state is None:
            return None, problems
        states[family] = state
    return {"history": payload["history"], "folds": payload["folds"], "states": states}, problems


_GO, _STOP = "go", "stop"


class _Stopped(Exception):
    """Raised inside a fold's thread when the lockstep is abandoned."""


class _Fold:
    """One fold's ``train_model`` in a thread that runs only while it holds the turn."""

    def __init__(
        self,
        family: str,
        config: TrainConfig,
        data: PreparedData,
        resume,
        policy,
        max_epoch_seconds: float = 0.0,
    ) -> None:
        self.family = family
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        self.summary: dict[str, Any] = {"finished": False, "best_epoch": 0, "best_metrics": {}}
        self.state: EpochState | None = None
        self.result: TrainResult | None = None

        def on_epoch(state: EpochState) -> None:
            self.outbox.put(("epoch", state))
            if self.inbox.get() == _STOP:
                raise _Stopped

        def run() -> None:
            if self.inbox.get() == _STOP:
                return
            keras.mixed_precision.set_global_policy(policy)  # Keras' state is per thread
            try:
                self.outbox.put(
                    (
                        "result",
                        train_model(
                            config,
                            data,
                            on_epoch=on_epoch,
                            resume=resume,
                            max_epoch_seconds=max_epoch_seconds,
                        ),
                    )
                )
            except _Stopped:
                self.outbox.put(("stopped", None))
            except BaseException as exc:  # handed to the lockstep's thread, raised there
                self.outbox.put(("error", exc))

        self.thread = threading.Thread(target=run, name=f"family-out {family}", daemon=True)
        self.thread.start()

    def step(self) -> None:
        """Lets the fold train one more epoch (or finish); waits until it hands back."""
        self.inbox.put(_GO)
        kind, payload = self.outbox.get()
        if kind == "epoch":
            self.state = payload
            self._record(payload.history, payload.best_epoch)
            if payload.finished:  # its train_model returns now: take its result
                self.inbox.put(_GO)
                kind, payload = self.outbox.get()
        if kind == "error":
            raise payload
        if kind == "result":
            self.result = payload
            self.state = None
            self.summary["finished"] = True
            self._record(payload.history, payload.best_epoch)

    def _record(self, history: list[dict[str, float]], best_epoch: int) -> None:
        self.summary.update(
            best_epoch=best_epoch,
            best_metrics=best_epoch_metrics(history, best_epoch),
            history=history,
        )

    def stop(self) -> None:
        """Ends the fold's thread (unless it has finished already)."""
        if self.thread.is_alive():
            self.inbox.put(_STOP)
            self.thread.join(timeout=60)


def train_family_folds(
    config: TrainConfig,
    data: PreparedData,
    *,
    on_epoch: Callable[[FamilyEpoch], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    max_epoch_seconds: float = 0.0,
) -> FamilyOutResult:
    """Trains one model per family held out, in lockstep, and combines their scores.

    Args:
        config: The configuration (``objective.family_out`` says how to combine; ``none``
            is taken as ``worst``).
        data: Prepared data; its train split is the pool the folds are made from.
        on_epoch: Called after every lockstep epoch with the combined scores.
        resume: What :func:`load_family_resume` read: folds already finished keep their
            scores, the others continue from their checkpoints.
        max_epoch_seconds: Each fold's per-epoch time limit (0 = none); when one fold's
            epoch runs past it, every fold stops after that epoch, whose combined row gets
            ``epoch_time_limit_s``.

    Returns:
        Each fold's result and the combined history.

    Raises:
        TrainingError: No two families to hold out.
    """
    reduce = config.objective.family_out if config.objective.family_out != "none" else "worst"
    metric = config.objective.metric
    key = f"val_family_{reduce}_{metric}"
    higher = METRICS[metric].higher_is_better
    policy = keras.mixed_precision.global_policy().name
    resume = resume or {}
    done_before: Mapping[str, Any] = resume.get("folds", {})
    history: list[dict[str, float]] = list(resume.get("history", []))
    folds: list[_Fold] = []
    results: dict[str, TrainResult] = {}
    for family, fold_data in family_fold_data(data):
        summary = done_before.get(family)
        if summary is not None and summary.get("finished"):
            results[family] = TrainResult(
                model=None,
                status=TrialStatus.COMPLETED,
                message="finished before the resume",
                history=summary.get("history", []),
                best_epoch=summary["best_epoch"],
                best_metrics=summary["best_metrics"],
                epochs_run=len(summary.get("history", [])),
            )
            continue
        states = resume.get("states", {})
        fold = _Fold(family, config, fold_data, states.get(family), policy, max_epoch_seconds)
        if summary is not None:
            fold.summary.update(summary)
        folds.append(fold)
    best_epoch, best_value = 0, None
    for row in history:
        if _better(row.get(key), best_value, higher):
            best_epoch, best_value = int(row["epoch"]), row[key]
    outcome = FamilyOutResult(results, history, best_epoch, best_value)
    try:
        active = list(folds)
        while active:
            for fold in active:
                fold.step()
            active = [f for f in active if f.result is None]
            results.update({f.family: f.result for f in folds if f.result is not None})
            summaries = {f: _summary_of(r) for f, r in results.items()}
            summaries.update({f.family: f.summary for f in folds})
            diverged = [r.message for r in results.values() if r.status == TrialStatus.NAN_LOSS]
            if diverged or any(not s["best_metrics"] for s in summaries.values()):
                outcome.diverged = diverged[0] if diverged else "a fold scored no epoch"
                return outcome
            row = {"epoch": len(history) + 1}
            row.update({f"val_{k}": v for k, v in family_scores(summaries, metric, reduce).items()})
            row["epoch_seconds"] = sum(
                f.state.history[-1].get("epoch_seconds", 0.0) for f in active if f.state
            )
            cut = any(r.status == TIME_LIMITED for r in results.values())
            if cut:
                row[TIME_LIMIT_KEY] = max_epoch_seconds
            history.append(row)
            if _better(row[key], outcome.best_value, higher):
                outcome.best_epoch, outcome.best_value = row["epoch"], row[key]
            if on_epoch is not None:
                models = [f.state.model for f in active if f.state] + [
                    r.model for r in results.values() if r.model is not None
                ]
                on_epoch(
                    FamilyEpoch(
                        epoch=row["epoch"],
                        row=row,
                        history=history,
                        best_epoch=outcome.best_epoch,
                        best_value=outcome.best_value,
                        finished=not active or cut,
                        states={f.family: f.state for f in active if f.state is not None},
                        summaries=summaries,
                        model=models[0] if models else None,
                    )
                )
            if cut:
                break
    finally:
        for fold in folds:
            fold.stop()
    return outcome


def _summary_of(result: TrainResult) -> dict[str, Any]:
    return {
        "finished": True,
        "best_epoch": result.best_epoch,
        "best_metrics": result.best_metrics,
        "history": result.history,
    }


def _better(value: float | None, best: float | None, higher: bool) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if higher else value < best
