"""pneumo-search against what users would pick instead, at an equal budget of trial-epochs.

Four search tools get the same data, the same flat space and the same budget (trial-epochs:
every epoch any trial trains counts), each over several seeds:

1. ``pneumo-search``: Optuna TPE inside Ray Tune with ASHA (what ``pneumo-search run`` does:
   the same trainable, leaderboard callback and run config);
2. ``random``: Ray Tune's default searcher (random sampling of the same space), no early
   stopping (FIFO scheduler, patience off): budget / epochs trials of the full epochs;
3. ``kerastuner``: KerasTuner's Hyperband (``max_epochs`` = the epochs, factor 3), in this
   process, on the same tf.data pipeline and validation scoring as a trial;
4. ``optuna``: plain Optuna, ``TPESampler(seed)`` and ``MedianPruner()``, sequential, each
   trial trained by ``pneumo_core.train_model``.

The Ray Tune arms run two single-CPU trials at a time; the in-process arms train one model
with two threads. Every arm records each scored epoch (wall time, validation objective).
Reported per seed and as medians: the best validation objective within the budget, the
trial-epochs and seconds each needed to reach random search's best, and the test metrics
of each arm's winner (retrained once with the same pipeline and seed, threshold chosen on
validation, test scored once). The best-so-far curves go to a plot.

    python bench/compare_search.py ../shared/data/chest_xray_224 --seeds 0 1 2
    python bench/compare_search.py ../shared/data/chest_xray_224 --seeds 0 1 2 \
        --experiment bench/compare_search_wide.yaml   # a wide space: bad regions are common
    python bench/compare_search.py ../shared/data/chest_xray_mini --quick   # the test's mode
    python bench/compare_search.py - --replot bench/figures/compare_search.json --plot x.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METHODS = ("pneumo-search", "random", "kerastuner", "optuna")
EXPERIMENT = Path(__file__).with_name("compare_search.yaml")
TEST_COLUMNS = ("auc", "rw_auc", "sensitivity", "specificity")


class Timeline:
    """Every scored epoch of one search, in the order they ended."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.start = time.monotonic()
        self.events: list[tuple[float, str, float]] = []  # (seconds, trial, value)

    def add(self, trial: str, value: float | None) -> None:
        """Records one scored epoch (a NaN value when the epoch gave no score)."""
        number = float(value) if value is not None else math.nan
        self.events.append((time.monotonic() - self.start, str(trial), number))

    @property
    def spent(self) -> bool:
        """Whether the budget of trial-epochs is used up."""
        return len(self.events) >= self.budget

    def curve(self) -> list[tuple[int, float, float]]:
        """``(trial_epochs, seconds, best_so_far)`` after each epoch, within the budget."""
        best, points = -math.inf, []
        for count, (seconds, _, value) in enumerate(self.events[: self.budget], start=1):
            if math.isfinite(value):
                best = max(best, value)
            points.append((count, seconds, best))
        return points


def reach(curve: list[list[float]], target: float) -> tuple[int | None, float | None]:
    """The trial-epochs and seconds at which ``curve`` first reaches ``target``."""
    for epochs, seconds, best in curve:
        if best >= target - 1e-12:
            return int(epochs), float(seconds)
    return None, None


def constants(space) -> dict[str, Any]:
    """The fixed values of a flat space, by name (the samplers return only sampled ones)."""
    from spaces.space import Constant

    return {name: p.value for name, p in space.params if isinstance(p, Constant)}


# --- the Ray Tune arms --------------------------------------------------------------------


def tune_space(space) -> dict[str, Any]:
    """The flat search space in Ray Tune's own distributions (Optuna names as keys)."""
    from ray import tune

    from spaces.space import Categorical, Constant, FloatRange, IntRange

    out: dict[str, Any] = {}
    for name, param in space.params:
        if isinstance(param, FloatRange):
            sample = tune.loguniform if param.log else tune.uniform
            out[name] = sample(param.low, param.high)
        elif isinstance(param, IntRange):
            out[name] = tune.qrandint(param.low, param.high, param.step)
        elif isinstance(param, Categorical):
            out[name] = tune.choice(param.encoded())
        elif isinstance(param, Constant):
            out[name] = param.value
        else:
            raise ValueError(f"{name}: only flat spaces translate to every tool")
    return out


def run_tune_arm(method: str, experiment, space, out: Path, budget: int) -> tuple[Timeline, dict]:
    """pneumo-search's own search (TPE + ASHA) or Tune's random search, to the budget."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from results.board.leaderboard import LEADERBOARD_FILE, read_csv_rows, row_params
    from search.runner import init_ray, tune_parts
    from search.storage import RunLocation

    timeline = Timeline(budget)
    metric = f"val_{experiment.objective.key}"

    class Recorder(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            timeline.add(trial.trial_id, result.get(metric))

    class Budget(tune.Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return timeline.spent

    location = RunLocation(local=out / method)
    location.local.mkdir(parents=True, exist_ok=True)
    init_ray(None)
    trainable, tune_config, run_config = tune_parts(experiment, space, location)
    param_space = None
    if method == "random":
        param_space = tune_space(space)
        tune_config = dataclasses.replace(
            tune_config,
            search_alg=None,
            scheduler=FIFOScheduler(),
            max_concurrent_trials=experiment.search.max_concurrent_trials or None,
            num_samples=math.ceil(budget / experiment.epochs),
        )
    run_config.callbacks = [*run_config.callbacks, Recorder()]
    run_config.stop = Budget()
    tuner = tune.Tuner(
        trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
    )
    tuner.fit()
    ranked = [r for r in read_csv_rows(location.local / LEADERBOARD_FILE) if r.get("rank")]
    return timeline, (row_params(ranked[0]) if ranked else {})


# --- KerasTuner Hyperband -----------------------------------------------------------------


def run_kerastuner(experiment, space, data, out: Path, budget: int, seed: int):
    """KerasTuner's Hyperband on the same pipeline, stopped when the budget is spent."""
    import keras
    import keras_tuner as kt

    from pneumo_core.models import create_model, model_params
    from pneumo_core.train.loop import compile_model, fit_inputs
    from spaces.space import Categorical, Constant, FloatRange, IntRange

    timeline = Timeline(budget)
    objective = experiment.objective.key

    def sampled(hp) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, param in space.params:
            if isinstance(param, FloatRange):
                sampling = "log" if param.log else "linear"
                values[name] = hp.Float(name, param.low, param.high, sampling=sampling)
            elif isinstance(param, IntRange):
                values[name] = hp.Int(name, param.low, param.high, step=param.step)
            elif isinstance(param, Categorical):
                values[name] = hp.Choice(name, param.encoded())
            elif isinstance(param, Constant):
                values[name] = param.value
        return values

    def train_config(hp):
        return experiment.trial_config(space.resolve(sampled(hp)), seed=seed)

    class Record(keras.callbacks.Callback):
        def __init__(self, trial: str) -> None:
            super().__init__()
            self.trial = trial

        def on_epoch_end(self, epoch, logs=None):
            timeline.add(self.trial, (logs or {}).get(f"val_{objective}"))
            if timeline.spent:
                self.model.stop_training = True

    class PipelineHyperModel(kt.HyperModel):
        # KerasTuner calls build(hp) and then fit(hp, model) for each trial: the fit inputs
        # made in build (the optimizer needs the steps per epoch) serve the fit after it.
        def build(self, hp):
            config = train_config(hp)
            params = model_params(config.model.name, config.model.params)
            model = create_model(
                config.model.name, params, data.input_shape, data.num_classes,
                weights=config.weights,
            )  # fmt: skip
            self.inputs = fit_inputs(config, data)
            compile_model(model, config, data.num_classes, self.inputs[1])
            return model

        def fit(self, hp, model, *args, epochs=1, initial_epoch=0, callbacks=(), **kwargs):
            dataset, steps, class_weight, scorer = self.inputs
            self.fits = getattr(self, "fits", 0) + 1
            trial = f"kerastuner-{self.fits}"
            return model.fit(
                dataset,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                class_weight=class_weight,
                shuffle=False,
                callbacks=[scorer, Record(str(trial)), *callbacks],
                verbose=0,
            )

    class BudgetHyperband(kt.oracles.HyperbandOracle):
        def populate_space(self, trial_id):
            if timeline.spent:
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
            return super().populate_space(trial_id)

    oracle = BudgetHyperband(
        objective=kt.Objective(f"val_{objective}", direction=experiment.objective.mode),
        max_epochs=experiment.epochs,
        factor=3,
        hyperband_iterations=1000,  # the budget ends the search
        seed=seed,
    )

    class BudgetTuner(kt.Hyperband):  # Hyperband's trial logic, the budget-aware oracle
        def __init__(self, **kwargs):
            kt.Tuner.__init__(self, **kwargs)

        def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
            # keras-tuner 1.4.8 imports tensorboard here on the TensorFlow backend, even
            # with no TensorBoard callback (none is passed here); TensorFlow 2.21 does not
            # install it.
            return

    tuner = BudgetTuner(
        oracle=oracle,
        hypermodel=PipelineHyperModel(),
        directory=str(out),
        project_name="kerastuner",
        overwrite=True,
    )
    tuner.search(epochs=experiment.epochs, verbose=0)
    best = tuner.oracle.get_best_trials(1)
    values = {}
    if best:
        raw = best[0].hyperparameters.values
        values = {name: raw[name] for name in space.names() if name in raw}
        values.update(constants(space))
    return timeline, space.resolve(values) if values else {}


# --- plain Optuna -------------------------------------------------------------------------


class _BudgetSpent(Exception):
    """Raised inside training when the budget of trial-epochs is used up."""


def run_optuna(experiment, space, data, out: Path, budget: int, seed: int):
    """Plain Optuna: TPE and the median pruner, one trial after another."""
    import optuna

    from pneumo_core.train.loop import train_model
    from pneumo_errors import ConfigError, TrainingError

    timeline = Timeline(budget)
    objective = experiment.objective.key
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if experiment.objective.mode == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(),
    )

    def run(trial: optuna.Trial) -> float:
        fixed = space.define_by_run(trial)
        values = space.resolve({**trial.params, **fixed})
        config = experiment.trial_config(values, seed=seed)
        best: list[float] = []

        def on_epoch(state) -> None:
            value = state.row.get(f"val_{objective}")
            timeline.add(f"optuna-{trial.number}", value)
            if state.best_value is not None:
                best[:] = [float(state.best_value)]
            if timeline.spent:
                raise _BudgetSpent
            if value is not None:
                trial.report(float(value), state.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned

        try:
            result = train_model(config, data, on_epoch=on_epoch)
        except _BudgetSpent:
            study.stop()
            if not best:
                raise optuna.TrialPruned from None
            return best[0]
        except (ConfigError, TrainingError):
            return math.nan  # Optuna records a failed trial
        value = result.best_metrics.get(objective)
        if timeline.spent:
            study.stop()
        return float(value) if value is not None else math.nan

    study.optimize(run, n_trials=10_000, catch=())
    done = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    if not done:
        return timeline, {}
    winner = (
        max(done, key=lambda t: t.value)
        if experiment.objective.mode == "max"
        else min(done, key=lambda t: t.value)
    )
    return timeline, space.resolve({**winner.params, **constants(space)})


# --- the run ------------------------------------------------------------------------------


def run_seed(experiment, space, data, out: Path, budget: int, seed: int, methods) -> dict:
    """All arms for one seed: their curves, winners and the winners' test metrics."""
    from bench.seeds import evaluate

    experiment = dataclasses.replace(
        experiment, search=dataclasses.replace(experiment.search, seed=seed)
    )
    no_early_stop = dataclasses.replace(
        experiment, training=dataclasses.replace(experiment.training, early_stopping_patience=0)
    )
    arms: dict[str, dict] = {}
    for method in methods:
        start = time.monotonic()
        if method == "pneumo-search":
            timeline, winner = run_tune_arm(method, experiment, space, out, budget)
        elif method == "random":
            timeline, winner = run_tune_arm(method, no_early_stop, space, out, budget)
        elif method == "kerastuner":
            timeline, winner = run_kerastuner(experiment, space, data, out, budget, seed)
        else:
            timeline, winner = run_optuna(experiment, space, data, out, budget, seed)
        seconds = time.monotonic() - start
        curve = timeline.curve()
        arms[method] = {
            "curve": [list(point) for point in curve],
            "best_val": curve[-1][2] if curve else math.nan,
            "trial_epochs": len(curve),
            "trials": len({trial for _, trial, _ in timeline.events[:budget]}),
            "seconds": seconds,
            "winner": winner,
        }
        print(
            f"seed {seed} {method}: best val {arms[method]['best_val']:.4f} after "
            f"{len(curve)} trial-epochs, {arms[method]['trials']} trials, {seconds:.0f} s",
            flush=True,
        )
    target = arms["random"]["best_val"] if "random" in arms else None
    for arm in arms.values():
        if target is not None:
            arm["to_random_best"] = reach(arm["curve"], target)
        if arm["winner"]:
            row = evaluate(experiment, arm["winner"], data, experiment.epochs, 0.95)
            arm["test"] = {name: row[name] for name in TEST_COLUMNS}
    return arms


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(known) if known else None


def summarize(results: dict[int, dict], methods, budget: int) -> str:
    """The table of medians over seeds (and the per-seed epochs-to-reach)."""
    lines = [
        f"medians over seeds {sorted(results)}; budget {budget} trial-epochs per search",
        f"{'method':<15}{'best val':>9}{'epochs→rand':>13}{'s→rand':>8}{'wall s':>8}"
        + "".join(f"{'test ' + c:>17}" for c in TEST_COLUMNS),
    ]
    for method in methods:
        arms = [results[s][method] for s in results if method in results[s]]
        epochs = [a.get("to_random_best", (None, None))[0] for a in arms]
        seconds = [a.get("to_random_best", (None, None))[1] for a in arms]
        reached = sum(e is not None for e in epochs)
        cells = [
            f"{_fmt(_median([a['best_val'] for a in arms]), 9, 4)}",
            f"{_fmt(_median(epochs), 9, 1)} {reached}/{len(arms)}",
            f"{_fmt(_median(seconds), 8, 0)}",
            f"{_fmt(_median([a['seconds'] for a in arms]), 8, 0)}",
        ]
        for column in TEST_COLUMNS:
            cells.append(_fmt(_median([a.get("test", {}).get(column) for a in arms]), 17, 4))
        lines.append(f"{method:<15}" + "".join(cells))
    if "random" in methods and "pneumo-search" in methods:
        ratios = []
        for arms in results.values():
            ours, theirs = arms["pneumo-search"]["to_random_best"][0], arms["random"]
            own = theirs["to_random_best"][0]
            ratios.append(ours / own if ours and own else None)
        shown = ", ".join("not reached" if r is None else f"{r:.2f}" for r in ratios)
        # a seed where it never got there counts as an infinite ratio
        middle = statistics.median(math.inf if r is None else r for r in ratios)
        lines.append(
            "pneumo-search's trial-epochs to reach random search's best, over random "
            f"search's own: {shown} (median "
            f"{'not reached' if math.isinf(middle) else f'{middle:.2f}'}; target <= 0.33)"
        )
    return "\n".join(lines)


def _fmt(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def plot(results: dict[int, dict], methods, path: Path) -> None:
    """Best validation objective so far against trial-epochs and wall time, per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = dict(zip(METHODS, ("C0", "C1", "C2", "C3"), strict=True))
    for method in methods:
        for i, seed in enumerate(sorted(results)):
            curve = results[seed].get(method, {}).get("curve") or []
            if not curve:
                continue
            epochs, seconds, best = zip(*curve, strict=True)
            label = method if i == 0 else None
            axes[0].step(epochs, best, where="post", color=colors[method], alpha=0.8, label=label)
            axes[1].step(seconds, best, where="post", color=colors[method], alpha=0.8)
    axes[0].set_xlabel("trial-epochs")
    axes[1].set_xlabel("wall seconds (Tune arms: 2 trials at a time; others: 1, 2 threads)")
    for axis in axes:
        axis.set_ylabel("best validation rw_auc so far")
        axis.grid(alpha=0.3)
    lows = [
        p[2] for s in results.values() for a in s.values() for p in a["curve"][-1:]
        if math.isfinite(p[2])
    ]  # fmt: skip
    if lows:
        for axis in axes:
            axis.set_ylim(max(0.0, min(lows) - 0.05), 1.0)
    axes[0].legend(loc="lower right")
    figure.suptitle("Best validation rw_auc within an equal budget (one line per seed)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="image folder (chest_xray_224 for the recorded run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=48, help="trial-epochs per search")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", default="runs/compare_search", help="work folder")
    parser.add_argument(
        "--experiment",
        default=str(EXPERIMENT),
        help="the experiment YAML: data settings, flat space, epochs (default: "
        "bench/compare_search.yaml; bench/compare_search_wide.yaml is the wide space)",
    )
    parser.add_argument("--plot", help="PNG of the curves (default: OUT/compare_search.png)")
    parser.add_argument(
        "--quick", action="store_true", help="32 px, 2 epochs, budget 4, one seed (tests)"
    )
    parser.add_argument(
        "--replot", metavar="JSON", help="only redraw the curves of an earlier run's JSON"
    )
    args = parser.parse_args(argv)
    if args.replot:
        results = json.loads(Path(args.replot).read_text())
        methods = [m for m in METHODS if any(m in arms for arms in results.values())]
        plot_path = Path(args.plot or Path(args.replot).with_suffix(".png"))
        plot(results, methods, plot_path)
        print(f"curves: {plot_path}")
        return 0

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from pneumo_core.data import prepare_data
    from pneumo_core.runtime import import_tensorflow
    from pneumo_core.train.loop import configure_threads
    from search.experiment_space import prepare_experiment

    import_tensorflow()
    configure_threads(2)  # the in-process arms: one model, both cores
    overrides: dict[str, Any] = {"data": {"root": args.data}}
    budget, seeds = args.budget, args.seeds
    if args.quick:
        overrides["data"]["image_size"] = 32
        overrides["training"] = {"epochs": 2}
        budget, seeds = 4, seeds[:1]
    out = Path(args.out).resolve()
    overrides["output_dir"] = str(out)
    experiment, space = prepare_experiment(Path(args.experiment), overrides)
    data = prepare_data(experiment.data)
    print(
        f"{args.data}: "
        + ", ".join(f"{name} {len(index)}" for name, index in data.splits.items())
        + f" images at {experiment.data.image_size} px; "
        f"{experiment.epochs} epochs per trial at most; budget {budget} trial-epochs; "
        f"machine: {os.cpu_count()} cores",
        flush=True,
    )
    results: dict[int, dict] = {}
    for seed in seeds:
        results[seed] = run_seed(experiment, space, data, out / f"seed{seed}", budget, seed,
                                 args.methods)  # fmt: skip
        (out / "compare_search.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(summarize(results, args.methods, budget))
    plot_path = Path(args.plot) if args.plot else out / "compare_search.png"
    plot(results, args.methods, plot_path)
    print(f"curves: {plot_path}; every number: {out / 'compare_search.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
