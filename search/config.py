"""The experiment configuration (``pneumo-search run EXPERIMENT.yaml``)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pneumo_core.configuration import load_config, require, to_dict
from pneumo_core.train.config import TrainConfig, TrainSections
from results.final.options import FinalOptions
from results.final.record import SearchRecord
from search.samplers import SAMPLERS, SamplerOptions

__all__ = [
    "ExperimentConfig",
    "ResourcesConfig",
    "SchedulerConfig",
    "SearchConfig",
    "load_experiment",
]

#: The valid ``search.sampler`` values: the sampler registry's names.
SAMPLER_NAMES = tuple(SAMPLERS)


#: TPE's random start-up trials per concurrent trial when ``startup_trials`` is not set:
#: bench/RESULTS.md ("Search at cluster scale"), 40 start-up trials at 16 workers beat 10
#: and 20 in simulated searches on our own learning curves.
STARTUP_PER_WORKER = 2.5


@dataclass(frozen=True)
class SearchConfig:
    """How many trials, sampled how.

    Attributes:
        sampler: Optuna sampler: ``tpe`` (default), ``random``, ``cmaes``, ``qmc``, ``gp``.
        seed: Seed of the sampler (and base seed of each trial's training).
        num_samples: Trials to run (-1 = until ``time_budget_s`` runs out).
        time_budget_s: Wall-time budget of the whole search in seconds (0 = none).
        max_concurrent_trials: Trials running at once (0 = as many as resources allow).
        max_failures: Retries of a failed trial (from its last checkpoint).
        reuse_workers: Run the next trial in a finished trial's worker process (Ray Tune's
            ``reuse_actors``): no TensorFlow import per trial, about 1.5x the trials per
            hour with small models, but each worker's memory grows by some MiB per trial
            (bench/RESULTS.md). Off by default.
        startup_trials: Random trials before the sampler's model takes over (tpe, cmaes,
            gp); None: for TPE with ``max_concurrent_trials`` set, 2.5 per concurrent
            trial and at least 10 (:data:`STARTUP_PER_WORKER`; 40 at 16 workers, where the
            simulated searches of bench/RESULTS.md did better than with 10 or 20), else
            the sampler's own default.
        constant_liar: TPE counts trials still running as if they had scored the worst
            value so far, so trials asked together spread out (many concurrent trials).
        warm_start: A finished (or stopped) run folder whose study seeds this search: its
            observations are copied into the new study and its ``warm_start_top`` best
            configurations run first (:mod:`search.warm_start`). The spaces must agree
            on every parameter the old trials used.
        warm_start_top: How many of the old run's best configurations run first.
        max_epoch_s: The cost guard: a trial whose epoch runs longer than this many seconds
            is stopped there (the cut epoch is scored as it stands), recorded with
            ``stop_reason`` ``epoch_time_limit``, and ``final`` does not retrain it (nor any
            trial whose median epoch took longer); 0 = no limit.
    """

    sampler: Literal[SAMPLER_NAMES] = "tpe"
    seed: int = 0
    num_samples: int = 10
    time_budget_s: float = 0.0
    max_concurrent_trials: int = 0
    max_failures: int = 0
    reuse_workers: bool = False
    startup_trials: int | None = None
    constant_liar: bool = False
    warm_start: str | None = None
    warm_start_top: int = 3
    max_epoch_s: float = 0.0

    def __post_init__(self) -> None:
        require(
            self.startup_trials is None or self.startup_trials >= 0,
            "startup_trials",
            "must be >= 0 (or null for the sampler's default)",
        )
        require(self.warm_start_top >= 0, "warm_start_top", "must be >= 0")
        require(self.max_epoch_s >= 0, "max_epoch_s", "must be >= 0 (0 = no limit)")
        require(self.num_samples == -1 or self.num_samples >= 1, "num_samples", "must be >= 1")
        require(self.time_budget_s >= 0, "time_budget_s", "must be >= 0")
        require(
            self.num_samples != -1 or self.time_budget_s > 0,
            "num_samples",
            "-1 (unlimited) needs a time_budget_s",
        )
        require(self.max_concurrent_trials >= 0, "max_concurrent_trials", "must be >= 0")
        require(self.max_failures >= 0, "max_failures", "must be >= 0")

    def sampler_options(self) -> SamplerOptions:
        """The sampler's start-up and pending-trial options (start-up trials resolved as
        the ``startup_trials`` attribute says)."""
        return SamplerOptions(
            startup_trials=self.resolved_startup_trials(), constant_liar=self.constant_liar
        )

    def resolved_startup_trials(self) -> int | None:
        """``startup_trials`` if set; for TPE with a concurrency limit, 2.5 random trials
        per concurrent trial and at least 10; None (the sampler's default) otherwise."""
        if self.startup_trials is not None:
            return self.startup_trials
        if self.sampler == "tpe" and self.max_concurrent_trials > 0:
            return max(10, math.ceil(STARTUP_PER_WORKER * self.max_concurrent_trials))
        return None


@dataclass(frozen=True)
class ResourcesConfig:
    """Resources of one trial.

    Attributes:
        cpu: CPUs per trial (TensorFlow's threads follow it).
        gpu: GPUs per trial; a fraction such as 0.5 packs two trials on one GPU.
        mixed_precision: Train in float16 with float32 weights (``mixed_float16``) on
            trials that have a GPU; ignored on CPU-only trials.
    """

    cpu: float = 1.0
    gpu: float = 0.0
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        require(self.cpu > 0, "cpu", "must be > 0")
        require(self.gpu >= 0, "gpu", "must be >= 0")
        require(self.gpu <= 1 or float(self.gpu).is_integer(), "gpu", "above 1 must be whole")


@dataclass(frozen=True)
class SchedulerConfig:
    """Cross-trial early stopping.

    Attributes:
        type: ``asha`` (default) or ``none``.
        grace_period: Epochs every trial runs before ASHA may stop it.
        reduction_factor: ASHA's halving rate.
        max_epochs: Epoch budget of a trial; default ``training.epochs``.
    """

    type: Literal["asha", "none"] = "asha"
    grace_period: int = 1
    reduction_factor: float = 3.0
    max_epochs: int | None = None

    def __post_init__(self) -> None:
        require(self.grace_period >= 1, "grace_period", "must be >= 1")
        require(self.reduction_factor > 1, "reduction_factor", "must be > 1")
        require(self.max_epochs is None or self.max_epochs >= 1, "max_epochs", "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig(TrainSections):
    """A whole search: the six training sections (the base every trial starts from) and
    the search's own keys.

    The sections (:class:`~pneumo_core.train.config.TrainSections`: ``data``, ``model``,
    ``augment``, ``training``, ``objective``, ``weights``) are those of a training run, not
    re-declared here: ``data`` is fixed for every trial except the keys a space may search
    (image size, color mode, aspect); ``model``, ``augment`` and ``training`` are the base
    for keys the space leaves alone (``training.epochs`` is each trial's epoch budget).

    Attributes:
        name: Experiment name (folder name under ``runs/`` by default).
        space: A shipped space name (``pneumo-search spaces``) or an inline space.
        search: Sampler, seed, number of trials, time budget, concurrency, retries.
        resources: CPUs and GPUs per trial.
        scheduler: ASHA settings, or none.
        final: How ``pneumo-search final`` retrains, thresholds and exports this search's
            best (:class:`~results.final.options.FinalOptions`; each key is a flag of
            ``final``, and a flag given replaces the key): the recipe keeps its final
            here, so ``pneumo-search final runs/NAME`` needs no flags.
        output_dir: Where the run goes: a folder (default ``runs/NAME``) or a storage URI
            Ray Tune accepts.
        address: Ray address; none starts a local embedded Ray.
    """

    name: str
    space: str | dict[str, Any] = "combined"
    search: SearchConfig = field(default_factory=SearchConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    final: FinalOptions = field(default_factory=FinalOptions)
    output_dir: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        require(
            bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name)),
            "name",
            "use letters, digits, '_', '-' and '.' (it names a folder)",
        )

    @property
    def epochs(self) -> int:
        """Epoch budget of each trial."""
        return self.scheduler.max_epochs or self.training.epochs

    @property
    def run_dir(self) -> str:
        """Where the run's files go (a local path or a URI)."""
        if self.output_dir:
            return self.output_dir.rstrip("/")
        return str(Path("runs") / self.name)

    def base_train_config(self) -> TrainConfig:
        """The training configuration every trial starts from."""
        training = dataclasses.replace(self.training, epochs=self.epochs)
        return TrainConfig(**{**self.sections(), "training": training}, seed=self.search.seed)

    def trial_config(self, values: dict[str, Any], seed: int) -> TrainConfig:
        """The training configuration of one trial.

        Args:
            values: Dotted configuration keys -> sampled values.
            seed: The trial's seed.

        Raises:
            ConfigError: A sampled value is invalid for its key.
        """
        return self.base_train_config().with_values(values, seed)

    def with_absolute_paths(self) -> ExperimentConfig:
        """The same experiment with data, cache and weights folders made absolute.

        Trials run in other working directories (and on other nodes), so relative paths
        are resolved once, in the driver.
        """

        def absolute(path: str) -> str:
            return str(Path(path).expanduser().resolve()) if path else path

        data = dataclasses.replace(
            self.data,
            root=absolute(self.data.root),
            cache_dir=absolute(self.data.cache_dir) if self.data.cache_dir else None,
            external_root=absolute(self.data.external_root) if self.data.external_root else None,
            train_exclude=absolute(self.data.train_exclude) if self.data.train_exclude else None,
        )
        weights = dataclasses.replace(
            self.weights, dirs=tuple(absolute(d) for d in self.weights.dirs)
        )
        search = self.search
        if search.warm_start and "://" not in search.warm_start:
            search = dataclasses.replace(search, warm_start=absolute(search.warm_start))
        return dataclasses.replace(self, data=data, weights=weights, search=search)

    def record(self) -> SearchRecord:
        """What the final stage needs of this search (``results.final.stage``)."""
        return SearchRecord(
            self.name, self.search.seed, self.base_train_config(), self.to_yaml_dict()
        )

    def to_yaml_dict(self) -> dict[str, Any]:
        """The configuration as plain values (saved as ``experiment.yaml`` in the run)."""
        return {"name": self.name, **to_dict(self)}  # the name first, as users write it


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Reads and validates an experiment file.

    Args:
        path: YAML file.
        overrides: Nested values replacing the file's (``{"data": {"root": ...}}``).

    Raises:
        ConfigError: Naming the file and the key at fault.
    """
    return load_config(ExperimentConfig, path, overrides, defaults={"name": Path(path).stem})
