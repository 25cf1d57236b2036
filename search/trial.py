"""The Ray Tune trainable: one trial = one ``pneumo_core.train_model`` run.

Runs in a Ray worker process. TensorFlow is imported here, inside the trial, never by the
driver. Each epoch the trial checkpoints (weights, best weights, history) and reports every
validation metric with ``ray.tune.report``; after a failure Ray restarts it from that
checkpoint. A diverged run (NaN loss) raises, so Tune marks the trial failed.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
from typing import Any

from pneumo_contracts.status import TrialStatus
from pneumo_core.train.config import TIME_LIMIT_KEY
from pneumo_errors import TrainingError
from search.config import ExperimentConfig
from spaces import SearchSpace

__all__ = ["TrialDiverged", "report_metrics", "run_trial"]


class TrialDiverged(TrainingError):
    """The trial's loss became NaN or infinite."""


def report_metrics(state: Any, objective: str) -> dict[str, Any]:
    """The metrics one epoch reports to Ray Tune (flat, numeric, NaN-free)."""
    metrics: dict[str, Any] = {"epoch": state.epoch}
    for key, value in state.row.items():
        if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
            metrics[key] = float(value)
    metrics["best_epoch"] = state.best_epoch
    metrics[f"best_val_{objective}"] = (
        float(state.best_value) if state.best_value is not None else float("nan")
    )
    metrics["param_count"] = int(state.model.count_params())
    # Ray marks every last result `done`, also when ASHA stops a trial; this tells apart a
    # trial that ended by itself (epoch budget or patience). A trial the per-epoch time
    # limit cut is stopped, not finished: Optuna records it as pruned, as an ASHA stop.
    metrics["trial_finished"] = bool(state.finished) and TIME_LIMIT_KEY not in metrics
    return metrics


def _configure_devices(tf, mixed_precision: bool = False) -> int:
    """Sets threads from the trial's CPUs, and the GPUs TensorFlow may use; returns CPUs.

    TensorFlow sees only the GPUs Ray assigned to this trial (none for a CPU trial, so it
    never takes GPU memory it was not given), with memory growth on, so fractional trials
    can share a GPU.
    """
    import ray

    from pneumo_core.train.loop import configure_threads

    context = ray.get_runtime_context()
    assigned = context.get_assigned_resources()
    cpus = max(1, int(assigned.get("CPU", 1)))
    configure_threads(cpus)
    physical = tf.config.list_physical_devices("GPU")
    if physical:
        visible = _assigned_gpus(physical, ray.get_gpu_ids())
        with contextlib.suppress(RuntimeError):  # already initialized
            tf.config.set_visible_devices(visible, "GPU")
            for gpu in visible:
                tf.config.experimental.set_memory_growth(gpu, True)
        if visible and mixed_precision:
            import keras

            keras.mixed_precision.set_global_policy("mixed_float16")
    return cpus


def _assigned_gpus(physical: list, gpu_ids: list) -> list:
    """The physical GPUs matching Ray's GPU ids.

    When Ray sets CUDA_VISIBLE_DEVICES, TensorFlow already sees only the assigned GPUs;
    when it does not (e.g. RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES in Ray jobs), the ids
    index the machine's GPUs.
    """
    if not gpu_ids:
        return []
    if len(physical) <= len(gpu_ids):
        return list(physical)
    indices = sorted({int(i) for i in gpu_ids if str(i).isdigit() and int(i) < len(physical)})
    return [physical[i] for i in indices]


def run_trial(config: dict[str, Any], experiment: ExperimentConfig, space: SearchSpace) -> None:
    """Trains the configuration sampled for this trial, reporting each epoch to Tune.

    Args:
        config: The trial's parameters as OptunaSearch produced them (Optuna names).
        experiment: The experiment (bound with ``tune.with_parameters``), with absolute
            paths.
        space: The search space, as the driver built it.

    Raises:
        TrialDiverged: The loss became NaN (the trial is marked failed).
    """
    from pneumo_core.runtime import import_tensorflow

    tf = import_tensorflow()
    import keras
    from ray import tune

    from pneumo_core.data import prepare_data
    from pneumo_core.train.loop import ResumeState, train_model

    # Ray reuses a trial's worker process for the next trial (reuse_actors): start clean.
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    _configure_devices(tf, experiment.resources.mixed_precision)
    train_config = experiment.trial_config(space.resolve(config), seed=experiment.search.seed)
    data = prepare_data(train_config.data)  # the node's decoded-image cache
    checkpoint = tune.get_checkpoint()
    objective = train_config.objective.key
    limit = experiment.search.max_epoch_s  # the cost guard (0 = none)

    import ray

    node_id = ray.get_runtime_context().get_node_id()

    # The folder of the last checkpoint: each new one carries a copy of it (`previous/`).
    last: dict[str, Any] = {"folder": None, "temporary": None, "resumed_from": 0}

    def on_epoch(state) -> None:
        temporary = tempfile.TemporaryDirectory()
        state.save(temporary.name, previous=last["folder"])
        tune.report(
            {
                **report_metrics(state, objective),
                "node_id": node_id,
                "resumed_from_epoch": last["resumed_from"],
            },
            checkpoint=tune.Checkpoint.from_directory(temporary.name),
        )
        if last["temporary"] is not None:
            last["temporary"].cleanup()
        last["folder"], last["temporary"] = temporary.name, temporary

    if train_config.objective.family_out != "none":
        from pneumo_core.train.family_out import load_family_resume, train_family_folds

        def load_family(folder: str):
            resume, problems = load_family_resume(folder)
            done = len(resume["history"]) if resume is not None else 0
            return resume, problems, (folder if resume is not None else None), done

        outcome = _from_checkpoint(
            checkpoint,
            load_family,
            lambda resume: train_family_folds(
                train_config, data, on_epoch=on_epoch, resume=resume, max_epoch_seconds=limit
            ),
            last,
        )
        if outcome.diverged:
            raise TrialDiverged(outcome.diverged)
        return

    def load_single(folder: str):
        # a damaged newest checkpoint: the newest valid one before it is used
        resume, problems = ResumeState.load_latest_valid(folder)
        if resume is None:
            return None, problems, None, 0
        return resume, problems, resume.folder, resume.epochs_done

    result = _from_checkpoint(
        checkpoint,
        load_single,
        lambda resume: train_model(
            train_config, data, on_epoch=on_epoch, resume=resume, max_epoch_seconds=limit
        ),
        last,
    )
    if result.status == TrialStatus.NAN_LOSS:
        raise TrialDiverged(result.message)


def _from_checkpoint(checkpoint, load, train, last: dict[str, Any]):
    """Runs ``train(resume)``: from Tune's checkpoint when there is one, else from scratch.

    ``load(folder)`` returns ``(resume, problems, folder to copy as previous, epochs
    done)``; problems (checkpoints passed over) are printed. The last temporary checkpoint
    folder is removed at the end.
    """
    try:
        if checkpoint is None:
            return train(None)
        with checkpoint.as_directory() as folder:
            resume, problems, previous, done = load(folder)
            for problem in problems:
                print(f"pneumo-search: checkpoint passed over: {problem}", file=sys.stderr)
            last["folder"], last["resumed_from"] = previous, done
            return train(resume)
    finally:
        if last["temporary"] is not None:
            last["temporary"].cleanup()
