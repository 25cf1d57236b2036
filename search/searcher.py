"""Optuna inside Ray Tune: the sampler registry and a pruning-aware OptunaSearch."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from pneumo_core.errors import ConfigError
from search.storage import OPTUNA_FILE, driven_run

__all__ = [
    "SAMPLERS",
    "PruningAwareOptunaSearch",
    "RunStudyStorage",
    "make_sampler",
    "make_searcher",
    "open_storage",
]

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(
        seed=seed,
        independent_sampler=optuna.samplers.TPESampler(seed=seed),
        warn_independent_sampling=False,
    ),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    "gp": lambda seed: optuna.samplers.GPSampler(
        seed=seed,
        independent_sampler=optuna.samplers.TPESampler(seed=seed),
        warn_independent_sampling=False,
    ),
}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """Returns a seeded Optuna sampler.

    Raises:
        ConfigError: Unknown name; the message lists the valid ones.
    """
    if name not in SAMPLERS:
        raise ConfigError(
            "search.sampler", f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}"
        )
    if name == "gp" and importlib.util.find_spec("torch") is None:
        raise ConfigError(
            "search.sampler",
            "gp needs PyTorch, which is not installed: pip install 'pneumo-search[gp]' "
            "(or choose tpe, random, cmaes or qmc)",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return SAMPLERS[name](seed)


class RunStudyStorage(optuna.storages.RDBStorage):
    """A run's sqlite study that follows the run when its saved state is loaded elsewhere.

    Tune pickles the searcher, study storage included, into the run's state. Unpickled by
    ``resume`` on another machine (or after the run folder moved, or from another mirror of
    a run at a URI), it opens the study file of the run this driver works on (see
    :func:`search.storage.driving`), not the path the first driver had, which may not
    exist here.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        location = driven_run()
        if location is not None:
            here = (location.local / OPTUNA_FILE).resolve()
            earlier = Path(str(state["url"]).removeprefix("sqlite:///"))
            if not here.is_file() and earlier.is_file() and earlier != here:
                shutil.copyfile(earlier, here)  # a study the store never received
            state = {**state, "url": f"sqlite:///{here}"}
        super().__setstate__(state)


def open_storage(path: str | Path) -> RunStudyStorage:
    """Opens (or creates) the Optuna study database of a run (sqlite file)."""
    return RunStudyStorage(f"sqlite:///{Path(path).resolve()}")


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records trials as Optuna sees them.

    Ray's OptunaSearch tells Optuna ``COMPLETE`` for a trial ASHA stopped and, when a trial
    that reported before fails, for that one too. Here a trial stopped before it finished
    (its last result lacks ``trial_finished``, which the trial sets itself) is told
    ``PRUNED`` after its last value is reported as an intermediate value (TPE uses those),
    and a failed trial ``FAIL``, so optuna-dashboard shows them as they were.
    """

    def restore(self, checkpoint_path: str) -> None:
        """Restores the searcher after a driver stopped; fails its orphaned Optuna trials.

        A trial asked from Optuna after the searcher's last saved state, or one whose
        driver died, would stay RUNNING in the study forever (Optuna's heartbeat does not
        run under Ray Tune). Any RUNNING trial the restored searcher does not track is
        told FAIL, with the reason in its system attributes.
        """
        super().restore(checkpoint_path)
        for trial_id, ot_trial in list(self._ot_trials.items()):
            storage = self._ot_study._storage
            try:
                getattr(storage, "_backend", storage).get_trial(ot_trial._trial_id)
            except KeyError:  # asked after the study file's last copy: Optuna never saw it
                del self._ot_trials[trial_id]
        tracked = {t._trial_id for t in self._ot_trials.values()}
        running = self._ot_study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        )
        for frozen in running:
            if frozen._trial_id in tracked:
                continue
            with contextlib.suppress(Exception):
                self._ot_study._storage.set_trial_system_attr(
                    frozen._trial_id, "fail_reason", "the search driver stopped during it"
                )
                self._ot_study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)

    def save(self, checkpoint_path: str) -> None:
        """Saves the searcher's state (Tune calls this), then uploads the study.

        A run at a URI uploads its study on each save, so the store never holds a searcher
        state newer than its study (a no-op for a local run).
        """
        super().save(checkpoint_path)
        location = driven_run()
        if location is not None:
            location.upload([OPTUNA_FILE])

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Reports the epoch's value to Optuna, with the trial's own epoch as the step.

        After a driver restart, Tune may re-run a trial from a state saved before Optuna
        was told its end; Optuna keeps what it was told and the extra result is dropped.
        """
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value = result.get(self._metric)
        step = result.get("epoch", result.get("training_iteration"))
        if value is None or step is None:
            return
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self._ot_trials[trial_id].report(float(value), int(step))

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        if trial_id not in self._ot_trials:  # dropped by restore: nothing to tell
            return None
        ot_trial = self._ot_trials[trial_id]
        if error:
            state, values = optuna.trial.TrialState.FAIL, None
        elif result and not result.get("trial_finished", False):
            state, values = optuna.trial.TrialState.PRUNED, None
            value = result.get(self._metric)
            step = result.get("epoch", result.get("training_iteration"))
            with contextlib.suppress(Exception):  # ASHA's last result skips on_trial_result
                frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
                if (
                    value is not None
                    and step is not None
                    and step not in frozen.intermediate_values
                ):
                    ot_trial.report(float(value), int(step))
        else:
            return super().on_trial_complete(trial_id, result, error)
        with contextlib.suppress(Exception):
            self._ot_study.tell(ot_trial, values, state=state)
        self._completed_trials.add(trial_id)
        return None


def make_searcher(
    define_by_run: Callable[[Any], dict[str, Any]],
    *,
    metric: str,
    mode: str,
    sampler: str,
    seed: int,
    storage_path: str | Path,
    study_name: str,
) -> PruningAwareOptunaSearch:
    """Builds the seeded Optuna searcher whose study is persisted in ``storage_path``."""
    return PruningAwareOptunaSearch(
        space=define_by_run,
        metric=metric,
        mode=mode,
        sampler=make_sampler(sampler, seed),
        seed=seed,
        study_name=study_name,
        storage=open_storage(storage_path),
    )
