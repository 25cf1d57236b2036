"""Searches simulated on the surrogate: a simulated clock, N workers, real searchers.

The design follows Syne Tune's simulator backend: each trial's epochs end at simulated
times given by the surrogate's epoch costs; events are processed in time order; a freed
worker asks the searcher for the next trial at once. What decides is real code:

- ``tune`` policies drive the product's own parts (:func:`search.runner.search_parts`):
  the Optuna sampler inside Ray Tune's OptunaSearch (our pruning-aware subclass, in memory)
  and Ray Tune's ASHAScheduler or FIFOScheduler, called in the order Ray Tune's controller
  calls them (``on_trial_add``; per result ``scheduler.on_trial_result`` then, unless it
  says STOP, ``searcher.on_trial_result``; at the end ``on_trial_complete`` on both);
- ``optuna`` policies drive a plain Optuna study through ask/tell with one of Optuna's
  pruners (``HyperbandPruner`` for Hyperband and, with TPE, the BOHB-like search).

Syne Tune's own simulator (``syne_tune.backend.simulator_backend``) runs Syne Tune's
schedulers, not Ray Tune's ASHA and OptunaSearch as we ship them, so this loop is ours.

A trial reports what the product's trial reports: ``epoch``, the best value so far
(``best_val_<objective>``) and ``trial_finished``; it stops by itself after the epoch
budget or ``training.early_stopping_patience`` epochs without improvement.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["OptunaPolicy", "SearchTrace", "TunePolicy", "simulate"]

#: Seconds a real trial spends before its training starts, beyond the surrogate's set-up
#: time: a Ray worker process starting and importing TensorFlow (bench/RESULTS.md,
#: trial overhead: 27.4 s per trial against 24.5 s for the same training called directly).
TRIAL_OVERHEAD_S = 3.0


class _Trial:
    """The bit of a Ray Tune ``Trial`` that the scheduler reads: its id."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


class TunePolicy:
    """The product's searcher and scheduler, driven as Ray Tune's controller drives them.

    Args:
        searcher: A Ray Tune ``Searcher`` (:class:`search.searcher.PruningAwareOptunaSearch`).
        scheduler: A Ray Tune ``TrialScheduler`` (ASHA or FIFO).
        names: The Optuna parameter names a configuration is made of.
    """

    def __init__(self, searcher: Any, scheduler: Any, names: list[str]) -> None:
        self.searcher = searcher
        self.scheduler = scheduler
        self.names = set(names)
        self.trials: dict[str, _Trial] = {}

    @property
    def study(self) -> Any:
        """The Optuna study behind the searcher."""
        return self.searcher.study

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = self.searcher.suggest(trial_id)
        if config is None:
            return None
        self.trials[trial_id] = _Trial(trial_id)
        self.scheduler.on_trial_add(None, self.trials[trial_id])
        return {k: v for k, v in config.items() if k in self.names}

    def on_result(self, trial_id: str, result: dict[str, Any]) -> bool:
        from ray.tune.schedulers import TrialScheduler

        decision = self.scheduler.on_trial_result(None, self.trials[trial_id], result)
        if decision == TrialScheduler.STOP:
            return False
        self.searcher.on_trial_result(trial_id, result)
        return True

    def on_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        self.scheduler.on_trial_complete(None, self.trials.pop(trial_id), result)
        self.searcher.on_trial_complete(trial_id, result=result)


class OptunaPolicy:
    """A plain Optuna study through ask/tell, with its pruner deciding early stops.

    Args:
        study: The study (sampler and pruner set).
        define_by_run: The space's define-by-run function.
        metric: The reported key whose value is told.
    """

    def __init__(self, study: Any, define_by_run: Callable[[Any], Any], metric: str) -> None:
        self.study = study
        self.define_by_run = define_by_run
        self.metric = metric
        self.trials: dict[str, Any] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.study.ask()
        self.define_by_run(trial)
        self.trials[trial_id] = trial
        return dict(trial.params)

    def on_result(self, trial_id: str, result: dict[str, Any]) -> bool:
        trial = self.trials[trial_id]
        trial.report(result[self.metric], result["epoch"])
        return not trial.should_prune()

    def on_complete(self, trial_id: str, result: dict[str, Any]) -> None:
        import optuna

        trial = self.trials.pop(trial_id)
        if result["trial_finished"]:
            self.study.tell(trial, result[self.metric])
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)


@dataclass
class SearchTrace:
    """What one simulated search did.

    Attributes:
        budget_s: The simulated wall-time budget.
        workers: Concurrent trials.
        times: Simulated seconds of each improvement of the best reported value.
        best: The best reported value at each of those times (non-decreasing).
        true_best: The noise-free surrogate score of the configuration leading at each
            of those times (what the leaderboard's winner would really give).
        trials: Trials started.
        epochs: Epochs trained.
        stopped_early: Trials the scheduler or pruner stopped.
    """

    budget_s: float
    workers: int
    times: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    true_best: list[float] = field(default_factory=list)
    trials: int = 0
    epochs: int = 0
    stopped_early: int = 0

    def best_at(self, t: float, true: bool = False) -> float:
        """The best reported value (or its true score) at simulated time ``t`` (NaN before
        any)."""
        values = self.true_best if true else self.best
        k = int(np.searchsorted(self.times, t, side="right"))
        return values[k - 1] if k else math.nan

    def time_to(self, value: float) -> float:
        """Simulated seconds until the best reported value reached ``value`` (inf: never)."""
        for t, best in zip(self.times, self.best):
            if best >= value:
                return t
        return math.inf


@dataclass
class _Running:
    trial_id: str
    params: dict[str, Any]
    curve: np.ndarray
    seconds: np.ndarray
    true_final: float
    epoch: int = 0
    best: float = -math.inf
    best_epoch: int = 0


def simulate(
    policy: Any,
    surrogate: Any,
    *,
    workers: int,
    budget_s: float,
    epochs: int,
    patience: int,
    metric: str,
    seed: int,
    max_trials: int = 100_000,
) -> SearchTrace:
    """Runs one simulated search until the simulated budget is spent.

    Args:
        policy: A :class:`TunePolicy` or :class:`OptunaPolicy`.
        surrogate: A fitted :class:`bench.surrogate.model.Surrogate`.
        workers: Trials running at once.
        budget_s: Simulated wall-time budget (trials still running then are cut).
        epochs: The epoch budget of a trial.
        patience: Epochs without improvement after which a trial ends itself (0: never).
        metric: The key results carry the best value so far under.
        seed: Seed of the trials' noise draws.
        max_trials: Stop asking for trials after this many.

    Returns:
        The search's trace.
    """
    rng = np.random.default_rng(seed)
    trace = SearchTrace(budget_s, workers)
    events: list[tuple[float, int, str]] = []
    running: dict[str, _Running] = {}
    order = 0

    def start(now: float) -> None:
        nonlocal order
        if trace.trials >= max_trials:
            return
        trial_id = f"sim_{trace.trials:05d}"
        params = policy.suggest(trial_id)
        if params is None:
            return
        trace.trials += 1
        curve, true_curve, seconds, setup = surrogate.sample(params, rng)
        running[trial_id] = _Running(
            trial_id, params, curve[:epochs], seconds[:epochs], float(np.max(true_curve))
        )
        order += 1
        ends = now + TRIAL_OVERHEAD_S + setup + seconds[0]
        heapq.heappush(events, (ends, order, trial_id))

    for _ in range(workers):
        start(0.0)
    while events:
        now, _, trial_id = heapq.heappop(events)
        if now > budget_s:
            break
        trial = running[trial_id]
        trial.epoch += 1
        trace.epochs += 1
        value = float(trial.curve[trial.epoch - 1])
        if value > trial.best:
            trial.best, trial.best_epoch = value, trial.epoch
        if not trace.best or trial.best > trace.best[-1]:
            trace.times.append(now)
            trace.best.append(trial.best)
            trace.true_best.append(trial.true_final)
        finished = trial.epoch >= epochs or (
            patience > 0 and trial.epoch - trial.best_epoch >= patience
        )
        result = {
            "epoch": trial.epoch,
            "training_iteration": trial.epoch,
            metric: trial.best,
            "trial_finished": finished,
        }
        go_on = policy.on_result(trial_id, result)
        if finished or not go_on:
            trace.stopped_early += 0 if finished else 1
            policy.on_complete(trial_id, result)
            del running[trial_id]
            start(now)
        else:
            order += 1
            heapq.heappush(events, (now + trial.seconds[trial.epoch], order, trial_id))
    return trace
