"""Warm start: a new search begins with what an earlier run learned (issue 18).

``search.warm_start: RUN_DIR`` (or ``run --warm-start RUN_DIR``) copies the earlier run's
Optuna observations (finished trials with their values, stopped ones with their
per-epoch values) into the new study, so the sampler's model starts informed, and queues
its best ``search.warm_start_top`` configurations as the first trials, so the leaderboard
of the new run holds them too. The copied trials carry the user attribute
``warm_start_from`` (the earlier run) and are not Tune trials: they appear in the new run's
``optuna.db``, not in its leaderboard.

The earlier study must fit the new space: every parameter its trials used must exist here
with the same distribution (range, log scale, choices), and both runs must follow the same
objective; otherwise :class:`~pneumo_errors.ConfigError` names the keys that differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pneumo_contracts.run_folder import EXPERIMENT_FILE, OPTUNA_FILE
from pneumo_errors import ConfigError

__all__ = ["WarmStart", "check_fits", "load_warm_start", "seed_study", "space_differences"]

#: The user attribute that marks a copied trial (its value: where it came from).
COPIED_FROM = "warm_start_from"


@dataclass
class WarmStart:
    """What an earlier run hands a new search.

    Attributes:
        source: Where it came from (the run folder or URI).
        objective: The objective key the earlier run followed.
        mode: ``max`` or ``min``.
        trials: Its finished and stopped Optuna trials (``FrozenTrial``).
    """

    source: str
    objective: str
    mode: str
    trials: list[Any]


def load_warm_start(run_dir: str | Path) -> WarmStart:
    """Reads an earlier run's experiment and study.

    Raises:
        ConfigError: ``search.warm_start`` names no run with a study.
    """
    import optuna

    from search.config import load_experiment
    from search.storage import is_uri, run_location

    where = str(run_dir)
    location = run_location(run_dir)
    if is_uri(where):
        location.download()
    folder = location.local
    if not (folder / EXPERIMENT_FILE).is_file() or not (folder / OPTUNA_FILE).is_file():
        raise ConfigError(
            "search.warm_start",
            f"{where} is not a run folder: it needs {EXPERIMENT_FILE} and {OPTUNA_FILE}",
        )
    config = load_experiment(folder / EXPERIMENT_FILE)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(folder / OPTUNA_FILE).resolve()}")
    try:
        study = optuna.load_study(study_name=config.name, storage=storage)
    except KeyError:
        raise ConfigError(
            "search.warm_start", f"{folder / OPTUNA_FILE} holds no study named {config.name}"
        ) from None
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    trials = [t for t in study.get_trials(deepcopy=False, states=states) if t.params]
    return WarmStart(where, config.objective.key, config.objective.mode, trials)


def space_differences(trials: list[Any], distributions: dict[str, Any]) -> list[str]:
    """How the earlier trials' parameters differ from a space's, one line per key.

    Args:
        trials: Optuna trials (``FrozenTrial``).
        distributions: The new space's parameter name -> distribution
            (:meth:`spaces.SearchSpace.distributions`).

    Returns:
        ``"KEY: ..."`` lines, sorted; empty when every parameter fits.
    """
    seen: dict[str, Any] = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            seen.setdefault(name, distribution)
    lines = []
    for name, before in sorted(seen.items()):
        now = distributions.get(name)
        if now is None:
            lines.append(f"{name}: not in this space")
        elif now != before:
            lines.append(f"{name}: {_describe(before)} there, {_describe(now)} here")
    return lines


def _describe(distribution: Any) -> str:
    if hasattr(distribution, "choices"):
        return f"choices {list(distribution.choices)}"
    scale = ", log" if getattr(distribution, "log", False) else ""
    step = getattr(distribution, "step", None)
    by = f", step {step}" if step not in (None, 1) else ""
    return f"[{distribution.low}, {distribution.high}{scale}{by}]"


def best_first(trials: list[Any], mode: str) -> list[Any]:
    """Trials ranked by the best value each reported (final, or best epoch when stopped)."""
    sign = 1.0 if mode == "max" else -1.0

    def best(trial) -> float:
        values = list(trial.intermediate_values.values())
        if trial.value is not None:
            values.append(trial.value)
        return max((sign * v for v in values), default=float("-inf"))

    return sorted(trials, key=best, reverse=True)


def check_fits(warm: WarmStart, *, objective: str, distributions: dict[str, Any]) -> None:
    """Checks that ``warm`` can seed a search following ``objective`` over ``distributions``.

    Raises:
        ConfigError: The objectives differ, or parameters do not fit the new space (every
            differing key named).
    """
    if warm.objective != objective:
        raise ConfigError(
            "search.warm_start",
            f"{warm.source} followed {warm.objective}, this search follows {objective}: "
            "their values cannot be compared",
        )
    differences = space_differences(warm.trials, distributions)
    if differences:
        raise ConfigError(
            "search.warm_start",
            f"the space of {warm.source} differs from this one in "
            f"{len(differences)} key(s): " + "; ".join(differences),
        )


def seed_study(
    study: Any, warm: WarmStart, *, objective: str, distributions: dict[str, Any], top: int
) -> tuple[int, int]:
    """Copies ``warm``'s trials into ``study`` and queues its ``top`` best configurations.

    Args:
        study: The new search's Optuna study (before its first trial).
        warm: What the earlier run hands over (:func:`load_warm_start`).
        objective: The new search's objective key.
        distributions: The new space's distributions.
        top: How many of the earlier run's best distinct configurations run first.

    Returns:
        ``(copied trials, queued configurations)``.

    Raises:
        ConfigError: The objectives differ, or parameters do not fit the new space (every
            differing key named).
    """
    import optuna

    check_fits(warm, objective=objective, distributions=distributions)
    copies = [
        optuna.trial.create_trial(
            state=trial.state,
            value=trial.value,  # a stopped trial's: its last reported value, as Optuna keeps it
            params=trial.params,
            distributions=trial.distributions,
            intermediate_values=dict(trial.intermediate_values),
            user_attrs={COPIED_FROM: warm.source, "warm_start_number": trial.number},
        )
        for trial in warm.trials
    ]
    study.add_trials(copies)
    queued, seen = 0, []
    for trial in best_first(warm.trials, warm.mode):
        if queued >= top:
            break
        if trial.params in seen:
            continue
        seen.append(trial.params)
        study.enqueue_trial(trial.params, user_attrs={COPIED_FROM: warm.source})
        queued += 1
    return len(copies), queued
