"""Running a search: Ray Tune's Tuner with Optuna (seeded) and ASHA; resuming one."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pneumo_contracts.run_folder import (
    DATA_SUMMARY_FILE,
    EXPERIMENT_FILE,
    LEADERBOARD_FILE,
    OPTUNA_FILE,
)
from pneumo_contracts.status import TrialStatus
from pneumo_errors import ConfigError, PneumoError
from results.board.leaderboard import read_csv_rows
from search.config import ExperimentConfig, load_experiment
from search.experiment_space import experiment_space, validate_space
from search.guard import check_guard, write_guard
from search.repair import recreate_missing_checkpoints
from search.storage import RunLocation, is_uri, run_location
from search.warm_start import check_fits, load_warm_start, seed_study
from spaces import SearchSpace

__all__ = ["RunSummary", "describe_trial", "resume_experiment", "run_experiment", "validate_space"]


@dataclass
class RunSummary:
    """What a finished (or interrupted) search left behind.

    Attributes:
        run_dir: The run folder (the local mirror of a run stored at a URI).
        where: Where the run is, as the user gave it (folder or URI).
        counts: Trials per status.
        best: The leaderboard's first row (or ``None``).
        interrupted: Whether the search stopped before its end (Ctrl-C).
    """

    run_dir: Path
    counts: dict[str, int]
    best: dict[str, str] | None
    interrupted: bool = False
    where: str = ""


class TrialDescriber:
    """Names a trial's model in a few words for the progress table (picklable)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, config: dict[str, Any]) -> str:
        return describe_trial(self.space.resolve(config))


def describe_trial(values: dict[str, Any]) -> str:
    """A short description of resolved trial values: model, key params, learning rate."""
    parts = [str(values.get("model.name", "?"))]
    if "model.params.preset" in values:
        parts.append(str(values["model.params.preset"]))
    if "model.params.alpha" in values:
        parts.append(f"a={values['model.params.alpha']}")
    if "model.params.weights" in values:
        parts.append(str(values["model.params.weights"]))
    if "model.params.num_blocks" in values:
        parts.append(f"{values['model.params.num_blocks']} blocks")
    if "training.learning_rate" in values:
        parts.append(f"lr={float(values['training.learning_rate']):.1e}")
    return " ".join(parts)


def _run_location(config: ExperimentConfig) -> RunLocation:
    local = not is_uri(config.run_dir)
    if local and _inside_ray_job() and not Path(config.run_dir).is_absolute():
        # A job runs in a temporary copy of its working dir: a relative run folder would
        # vanish with it.
        raise ConfigError(
            "output_dir",
            "inside a Ray job, set an absolute output_dir (e.g. --set output_dir=/shared/runs/"
            f"{config.name}): the job's working directory is a temporary copy",
        )
    return run_location(config.run_dir)


def _inside_ray_job() -> bool:
    """Whether this driver is the entrypoint of a Ray job (``ray job submit``)."""
    return bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))


def init_ray(address: str | None) -> None:
    """Connects to Ray once: ``address`` (or ``RAY_ADDRESS``), else a local embedded Ray.

    The local Ray listens on 127.0.0.1 only, without the dashboard UI (Ray still starts its
    dashboard process, for the state and Jobs APIs); Ray's own logs stay out of the
    driver's output.

    Args:
        address: ``auto``, ``HOST:PORT`` or ``ray://HOST:10001``; None for a local Ray.
    """
    import ray

    _quiet_ray()
    if ray.is_initialized():
        return
    # No runtime env of our own: trials quiet TensorFlow themselves (import_tensorflow), and
    # inside a job a second runtime env makes Ray delete the job's working_dir copy.
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    # Inside a Ray job (`ray job submit`), RAY_ADDRESS names the job's cluster.
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **quiet)
    else:
        # "local": a Ray of its own even when `ray start` left a cluster on this machine
        # (with no address, ray.init joins the latest one it finds in /tmp/ray)
        with _loopback_only():
            ray.init(
                address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet
            )


@contextlib.contextmanager
def _loopback_only():
    """While a local Ray starts, makes it bind every server to 127.0.0.1.

    Ray replaces ``127.0.0.1`` by the machine's network address (and its servers then
    listen on every interface) unless it believes it runs on a single-machine platform,
    which it reads from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` (``ENABLE_RAY_CLUSTER``).
    The processes started meanwhile (GCS, raylet, agents, workers) inherit the setting.
    """
    from ray._private import ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def _trainable(config: ExperimentConfig, space: SearchSpace):
    from ray import tune

    from search.trial import run_trial

    resources = {"cpu": config.resources.cpu}
    if config.resources.gpu:
        resources["gpu"] = config.resources.gpu
    return tune.with_resources(
        tune.with_parameters(run_trial, experiment=config, space=space), resources
    )


def search_parts(config: ExperimentConfig, space: SearchSpace, location: RunLocation | None):
    """The searcher (Optuna inside OptunaSearch) and the scheduler (ASHA or FIFO) of a search.

    Both follow ``best_val_<objective>``, the best value so far: the epoch whose weights a
    trial keeps, and what the leaderboard ranks by.

    Args:
        config: The experiment.
        space: Its search space.
        location: The run (its study file); None keeps the study in memory (the
            simulated searches of bench/surrogate drive these same parts).

    Returns:
        ``(searcher, scheduler)``.
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.searcher import make_searcher

    metric = f"best_val_{config.objective.key}"
    mode = config.objective.mode
    searcher = make_searcher(
        space.define_by_run,
        metric=metric,
        mode=mode,
        sampler=config.search.sampler,
        seed=config.search.seed,
        location=location,
        study_name=config.name,
        options=config.search.sampler_options(),
    )
    if config.scheduler.type != "asha":
        return searcher, FIFOScheduler()
    scheduler = ASHAScheduler(
        # the trial's own epoch count: after a retry from an older checkpoint, Tune's
        # training_iteration runs ahead of the epochs actually trained
        time_attr="epoch",
        metric=metric,
        mode=mode,
        max_t=config.epochs,
        grace_period=min(config.scheduler.grace_period, config.epochs),
        reduction_factor=config.scheduler.reduction_factor,
    )
    return searcher, scheduler


def tune_parts(config: ExperimentConfig, space: SearchSpace, location: RunLocation):
    """What ``tune.Tuner`` needs to run ``config``'s search, as ``pneumo-search run`` does.

    Args:
        config: The experiment (absolute paths).
        space: Its search space, built and validated.
        location: Where the run's results, checkpoints and leaderboard go.

    Returns:
        ``(trainable, tune_config, run_config)``: the trainable with its resources, the
        searcher (Optuna inside OptunaSearch) and scheduler, and the run config with the
        leaderboard and progress callbacks.
    """
    from ray import tune

    from search.callbacks import LeaderboardCallback, ProgressCallback
    from search.concurrency import LimiterSync, ReconcilingLimiter

    mode = config.objective.mode
    trainable = _trainable(config, space)
    searcher, scheduler = search_parts(config, space, location)
    callbacks = [
        LeaderboardCallback(location, config.objective.key, mode, config.epochs, space.resolve),
        ProgressCallback(config.objective.key, mode, config.epochs, TrialDescriber(space)),
    ]
    if config.search.max_concurrent_trials:
        # Tune's own limiter, kept in step with Tune's trials (a torn saved state could
        # otherwise hold a slot forever after a resume; see search.concurrency).
        searcher = ReconcilingLimiter(searcher, config.search.max_concurrent_trials)
        callbacks.append(LimiterSync(searcher))
    tune_config = tune.TuneConfig(
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=config.search.num_samples,
        time_budget_s=config.search.time_budget_s or None,
        # Opt-in: a finished trial's worker (TensorFlow already imported) runs the next one.
        reuse_actors=config.search.reuse_workers,
    )
    run_config = tune.RunConfig(
        name=location.name,
        storage_path=location.tune_storage(),
        callbacks=callbacks,
        # One per trial (each carries a copy of the one before, `previous/`): Tune then
        # saves its state at every checkpoint, so `resume` starts from the latest results.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=config.search.max_failures),
        verbose=0,
    )
    return trainable, tune_config, run_config


def run_experiment(
    config: ExperimentConfig,
    *,
    address: str | None = None,
    log: Callable[[str], None] | None = None,
) -> RunSummary:
    """Runs a search from the start.

    Args:
        config: The experiment.
        address: Ray address (overrides ``config.address``); none = a local Ray.
        log: Where to say where the run goes and what the data left out, once every check
            has passed and the run folder exists (nothing is said before a refusal).

    Returns:
        The summary of the run.

    Raises:
        ConfigError: A bad space, or the run folder already holds a search (or the
            study of one that never got going).
        DataError: The data cannot be used.
    """
    from ray import tune

    from pneumo_core.data import prepare_data, problem_lines
    from search.searcher import make_sampler

    location = _run_location(config)
    where = location.tune_path()
    if location.has_tune_state():
        raise ConfigError(
            "name",
            f"{where} already holds a search: `pneumo-search resume {where}` continues it, "
            "or pass --name NEW",
        )
    if location.uri is None and (location.local / OPTUNA_FILE).is_file():
        # A driver that stopped before Tune's first save: its study would be continued
        # under a space that may have changed since (Optuna refuses that mid-search).
        raise ConfigError(
            "name",
            f"{location.local} holds the Optuna study ({OPTUNA_FILE}) of an earlier search "
            "that stopped before Ray Tune saved any state, so it cannot be resumed; move "
            "that folder away or pass --name NEW",
        )
    config = config.with_absolute_paths()
    space = experiment_space(config)
    validate_space(config, space)
    make_sampler(config.search.sampler, config.search.seed)  # e.g. gp without PyTorch
    warm = _checked_warm_start(config, space)  # refused here, before the run folder exists
    data = prepare_data(config.data)  # checks the data and builds the node's cache once
    run_dir = location.local
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / EXPERIMENT_FILE).write_text(yaml.safe_dump(config.to_yaml_dict(), sort_keys=False))
    (run_dir / DATA_SUMMARY_FILE).write_text(json.dumps(data.summary, indent=2))
    write_guard(run_dir, config)
    if log is not None:
        log(f"experiment {config.name}: runs in {location.tune_path()}")
        for line in problem_lines(data.summary):
            log(line)
    init_ray(address or config.address)
    trainable, tune_config, run_config = tune_parts(config, space, location)
    if warm is not None:
        copied, queued = seed_study(
            optuna_searcher(tune_config.search_alg).study,
            warm,
            objective=config.objective.key,
            distributions=space.distributions(),
            top=config.search.warm_start_top,
        )
        if log is not None:
            log(
                f"warm start from {warm.source}: {copied} observations copied, "
                f"its {queued} best configuration(s) run first"
            )
    location.upload()  # the study file exists now: the store holds every driver file
    tuner = tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)
    return _fit(tuner, location, config)


def _checked_warm_start(config: ExperimentConfig, space: SearchSpace):
    """The earlier run ``search.warm_start`` names, checked against this search (or None).

    Raises:
        ConfigError: Not a run, another objective, or parameters that do not fit.
    """
    if not config.search.warm_start:
        return None
    warm = load_warm_start(config.search.warm_start)
    check_fits(warm, objective=config.objective.key, distributions=space.distributions())
    return warm


def resume_experiment(run_dir: str | Path, *, address: str | None = None) -> RunSummary:
    """Finishes a search whose driver stopped (killed, Ctrl-C, machine restart).

    Finished trials are kept as they are, unfinished ones continue from their last
    checkpoint, and the Optuna searcher continues from its saved state.

    Raises:
        PneumoError: ``run_dir`` holds no resumable search.
    """
    from ray import tune

    location = run_location(run_dir)
    location.download()  # a run at a URI: its driver files come back into the mirror
    where, run_dir = location.tune_path(), location.local
    if not (run_dir / EXPERIMENT_FILE).is_file() or not tune.Tuner.can_restore(where):
        raise PneumoError(f"{where}: no resumable search here (no {EXPERIMENT_FILE} or Tune state)")
    config = load_experiment(run_dir / EXPERIMENT_FILE)
    check_guard(run_dir, config)
    missing_checkpoints = [] if location.uri else recreate_missing_checkpoints(run_dir)
    for missing in missing_checkpoints:
        print(
            f"pneumo-search: {missing} is gone; its trial resumes from an older valid "
            "checkpoint if one is left, else from the start",
            file=sys.stderr,
        )
    space = experiment_space(config)
    init_ray(address or config.address)
    # Searcher, scheduler and callbacks come back from the run folder's saved state.
    trainable = _trainable(config, space)
    tuner = tune.Tuner.restore(
        where, trainable=trainable, resume_unfinished=True, resume_errored=False
    )
    follow_run(tuner, location)  # the restored searcher and callbacks use this run's files
    return _fit(tuner, location, config)


def optuna_searcher(search_alg):
    """The :class:`~search.searcher.PruningAwareOptunaSearch` inside Tune's searcher wrappers.

    Raises:
        RuntimeError: There is none (a search algorithm this product did not build).
    """
    from search.searcher import PruningAwareOptunaSearch, find_wrapped

    searcher = find_wrapped(search_alg, PruningAwareOptunaSearch)
    if searcher is None:
        raise RuntimeError(f"the search algorithm is {type(search_alg).__name__}")
    return searcher


def follow_run(tuner, location: RunLocation) -> None:
    """Points a restored Tuner's searcher and callbacks at ``location`` and its limiter.

    ``Tuner.restore`` unpickles them from the run's saved state with the place the first
    driver had (another machine, another mirror of a run at a URI, the folder before it
    moved); they are told this driver's run before ``fit`` uses them. Ray Tune has no
    public way to reach a restored Tuner's searcher and callbacks, so this reads them from
    its ``TunerInternal`` (``ray==2.60.0`` is pinned; a layout change fails here, loudly).

    Raises:
        RuntimeError: The restored Tuner does not hold them where Ray 2.60 keeps them.
    """
    from search.callbacks import LeaderboardCallback
    from search.concurrency import LimiterSync, find_limiter

    internal = getattr(tuner, "_local_tuner", None)
    tune_config = getattr(internal, "_tune_config", None)
    if internal is None or tune_config is None:
        raise RuntimeError("ray.tune.Tuner.restore: no TunerInternal to restore the run from")
    limiter = find_limiter(tune_config.search_alg)
    optuna_searcher(tune_config.search_alg).follow(location)
    for callback in internal.get_run_config().callbacks or []:
        if isinstance(callback, LeaderboardCallback):
            callback.follow(location)
        if isinstance(callback, LimiterSync) and limiter is not None:
            callback.follow(limiter)


def _close_trials_cut_by_the_budget(location: RunLocation, config: ExperimentConfig) -> None:
    """Trials still running when ``time_budget_s`` ran out end as ``stopped_early``.

    Ray Tune stops them without telling the callbacks or the searcher; their rows keep the
    best epoch they reached, with ``stop_reason`` ``time_budget``, and their Optuna trials
    become PRUNED (not RUNNING forever). The search is then complete, not interrupted.
    """
    import optuna

    from results.board.leaderboard import merge_rows
    from search.searcher import open_storage

    board = location.local / LEADERBOARD_FILE
    cut = [
        {**row, "status": TrialStatus.STOPPED_EARLY, "stop_reason": "time_budget"}
        for row in read_csv_rows(board)
        if row["status"] == TrialStatus.RUNNING
    ]
    if not cut:
        return
    merge_rows(board, cut, config.objective.mode)
    study = optuna.load_study(
        study_name=config.name, storage=open_storage(location.local / OPTUNA_FILE)
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_system_attr(trial._trial_id, "stop_reason", "time_budget")
        study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
    location.upload()


def _quiet_ray() -> None:
    # The progress table reports trials, failures included, one line each; Ray's own
    # per-trial tracebacks and checkpoint-frequency warnings stay in the run folder.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _fit(tuner, location: RunLocation, config: ExperimentConfig) -> RunSummary:
    run_dir = location.local
    if _inside_ray_job():
        # Ray may clean the job's working_dir copy up when trial workers exit; Tune needs a
        # current directory that stays.
        os.chdir(run_dir)
    start = time.monotonic()
    try:
        results = tuner.fit()
    finally:
        location.upload()  # the driver's files, as they are at the end
    elapsed = time.monotonic() - start
    del results  # the leaderboard, written as trials ended, is the summary's source
    budget = config.search.time_budget_s
    budget_spent = bool(budget) and elapsed >= 0.95 * budget
    if budget_spent:
        _close_trials_cut_by_the_budget(location, config)
    rows = read_csv_rows(run_dir / LEADERBOARD_FILE)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    ended = len(rows) - counts.get(TrialStatus.RUNNING, 0)
    # Ray Tune returns normally after Ctrl-C; a search that ended with trials unfinished
    # or fewer trials than asked for (and budget left) was interrupted.
    interrupted = counts.get(TrialStatus.RUNNING, 0) > 0 or (
        config.search.num_samples != -1 and ended < config.search.num_samples and not budget_spent
    )
    best = rows[0] if rows and rows[0].get("rank") else None
    return RunSummary(run_dir, counts, best, interrupted=interrupted, where=location.tune_path())
