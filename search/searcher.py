"""Optuna inside Ray Tune: a pruning-aware OptunaSearch and the run's study storage.

The sampler registry is :mod:`search.samplers` (re-exported here).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from pneumo_contracts.run_folder import OPTUNA_FILE
from search.samplers import SAMPLERS, SamplerOptions, make_sampler
from search.storage import RunLocation

__all__ = [
    "SAMPLERS",
    "PruningAwareOptunaSearch",
    "RunStudyStorage",
    "find_wrapped",
    "make_sampler",
    "make_searcher",
    "open_storage",
]


class RunStudyStorage(optuna.storages.RDBStorage):
    """A run's sqlite study that can be pointed at the run where it now is.

    Tune pickles the searcher, study storage included, into the run's state. Unpickled by
    ``resume`` on another machine (or after the run folder moved, or from another mirror of
    a run at a URI) it still names the path the first driver had, which may not exist here.
    So unpickling connects to nothing: :meth:`attach` connects it to this driver's run, and
    only a storage used before that connects to the path it was saved with.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__["_saved_state"] = state  # connected by attach(), or on first use

    def __getstate__(self) -> dict[str, Any]:
        saved = self.__dict__.get("_saved_state")
        return dict(saved) if saved is not None else super().__getstate__()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not set yet: a storage used before attach().
        saved = self.__dict__.pop("_saved_state", None)
        if saved is None:
            raise AttributeError(name)
        super().__setstate__(saved)
        return getattr(self, name)

    def attach(self, location: RunLocation) -> None:
        """Uses the study file of the run at ``location`` from now on.

        If that file is missing and the old path still holds one (a study the store never
        received), the old one is copied there first.
        """
        saved = self.__dict__.pop("_saved_state", None)
        state = saved if saved is not None else super().__getstate__()
        here = (location.local / OPTUNA_FILE).resolve()
        earlier = Path(str(state["url"]).removeprefix("sqlite:///"))
        if saved is None:
            if earlier == here:
                return
            self.engine.dispose()
        if not here.is_file() and earlier.is_file() and earlier != here:
            shutil.copyfile(earlier, here)
        super().__setstate__({**state, "url": f"sqlite:///{here}"})


def find_wrapped(search_alg: Any, kind: type) -> Any:
    """The first searcher of type ``kind`` along a chain of Tune searcher wrappers, or None.

    Wrappers (the concurrency limiter, Tune's SearchGenerator) hold the searcher they wrap
    as ``searcher``.
    """
    while search_alg is not None:
        if isinstance(search_alg, kind):
            return search_alg
        search_alg = getattr(search_alg, "searcher", None)
    return None


def open_storage(path: str | Path) -> RunStudyStorage:
    """Opens (or creates) the Optuna study database of a run (sqlite file)."""
    return RunStudyStorage(f"sqlite:///{Path(path).resolve()}")


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records trials as Optuna sees them, in the run it is told.

    Ray's OptunaSearch tells Optuna ``COMPLETE`` for a trial ASHA stopped and, when a trial
    that reported before fails, for that one too. Here a trial stopped before it finished
    (its last result lacks ``trial_finished``, which the trial sets itself) is told
    ``PRUNED`` after its last value is reported as an intermediate value (TPE uses those),
    and a failed trial ``FAIL``, so optuna-dashboard shows them as they were.

    The run it works in is passed to it (:meth:`follow`): its study file is that run's, and
    a run at a URI gets the study uploaded on each save.
    """

    _run_location: RunLocation | None = None

    @property
    def study(self) -> optuna.Study:
        """The Optuna study the sampler draws from (the run's ``optuna.db``, or in memory)."""
        return self._ot_study

    def follow(self, location: RunLocation) -> None:
        """Works in the run at ``location``: its study file, its store.

        ``resume`` calls this on the searcher Tune restored from the run's saved state, which
        still names the place the first driver had.
        """
        self._run_location = location
        study = getattr(self, "_ot_study", None)
        if study is not None:
            storage = getattr(study._storage, "_backend", study._storage)
            if isinstance(storage, RunStudyStorage):
                storage.attach(location)

    def restore(self, checkpoint_path: str) -> None:
        """Restores the searcher after a driver stopped; fails its orphaned Optuna trials.

        A trial asked from Optuna after the searcher's last saved state, or one whose
        driver died, would stay RUNNING in the study forever (Optuna's heartbeat does not
        run under Ray Tune). Any RUNNING trial the restored searcher does not track is
        told FAIL, with the reason in its system attributes. The restored study is that of
        the run this searcher follows (:meth:`follow`), not the saved path.
        """
        location = self._run_location
        super().restore(checkpoint_path)  # replaces every attribute with the saved ones
        if location is not None:
            self.follow(location)
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
        if self._run_location is not None:
            self._run_location.upload([OPTUNA_FILE])

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
    location: RunLocation | None,
    study_name: str,
    options: SamplerOptions | None = None,
) -> PruningAwareOptunaSearch:
    """Builds the seeded Optuna searcher whose study is the run's ``optuna.db``.

    Args:
        define_by_run: The space's define-by-run function.
        metric: The reported metric followed.
        mode: ``max`` or ``min``.
        sampler: A name from :data:`search.samplers.SAMPLERS`.
        seed: The sampler's seed.
        location: The run: its study file, and its store for a run at a URI. None: the
            study stays in memory (bench/surrogate's simulated searches).
        study_name: The Optuna study's name.
        options: The sampler's start-up and pending-trial options.
    """
    searcher = PruningAwareOptunaSearch(
        space=define_by_run,
        metric=metric,
        mode=mode,
        sampler=make_sampler(sampler, seed, options),
        seed=seed,
        study_name=study_name,
        storage=open_storage(location.local / OPTUNA_FILE) if location is not None else None,
    )
    if location is not None:
        searcher.follow(location)
    return searcher
