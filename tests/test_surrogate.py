"""The surrogate benchmark's parts (bench/surrogate, issue 18): the stored curves, the fast
forest, and the simulator driving the product's searcher and Ray Tune's ASHA."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from bench.surrogate.blackbox import Blackbox, Curve, load_blackbox, merge_curve
from bench.surrogate.model import Encoder, FastForest, _regressor, epoch_noise
from bench.surrogate.simulator import TunePolicy, simulate
from pneumo_core.configuration import from_dict
from search.config import ExperimentConfig
from search.runner import search_parts
from spaces import SearchSpace

SPACE = {
    "model.name": "cnn",
    "training.learning_rate": {"float": [1.0e-4, 1.0e-1], "log": True},
    "training.batch_size": {"choice": [16, 32]},
}
EPOCHS = 6


class ToySurrogate:
    """Curves known in advance: the closer the learning rate to 1e-2, the better; a learning
    rate above 5e-2 never improves after its first epoch (patience stops it)."""

    def sample(self, params, rng):
        lr = params["training.learning_rate"]
        quality = 0.99 - 0.1 * (math.log10(lr) + 2) ** 2
        rising = quality - 0.2 * np.exp(-np.arange(EPOCHS))
        curve = np.full(EPOCHS, 0.6) if lr > 5e-2 else rising
        seconds = np.full(EPOCHS, 10.0 if params["training.batch_size"] == 16 else 5.0)
        return curve, curve, seconds, 1.0


def experiment(**scheduler) -> ExperimentConfig:
    return from_dict(
        ExperimentConfig,
        {
            "name": "toy",
            "space": SPACE,
            "training": {"epochs": EPOCHS, "early_stopping_patience": 2},
            "search": {"sampler": "tpe", "seed": 0},
            "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 3, **scheduler},
        },
    )


def run_toy(workers: int, budget: float, config: ExperimentConfig | None = None):
    config = config or experiment()
    space = SearchSpace.from_dict(SPACE)
    searcher, scheduler = search_parts(config, space, None)
    policy = TunePolicy(searcher, scheduler, space.names())
    trace = simulate(
        policy,
        ToySurrogate(),
        workers=workers,
        budget_s=budget,
        epochs=EPOCHS,
        patience=2,
        metric="best_val_rw_auc",
        seed=0,
    )
    return trace, policy.study


def test_the_simulator_drives_tune_asha_and_tells_optuna_what_happened():
    trace, study = run_toy(workers=4, budget=2000)
    assert trace.trials >= 20 and trace.stopped_early > 0
    states = [t.state for t in study.trials]
    running = states.count(optuna.trial.TrialState.RUNNING)
    assert running <= 4  # at most the workers' trials are pending at the end
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and complete
    # a trial ASHA stopped ran less than the budget; a completed one ran it all (its last
    # epoch is told as the value, not reported: Tune skips the searcher's on_trial_result
    # for a result its scheduler answers STOP, and at max_t ASHA does) or stopped itself
    # by patience (a flat curve: 3 epochs)
    assert all(len(t.intermediate_values) < EPOCHS for t in pruned)
    for trial in complete:
        steps = len(trial.intermediate_values)
        flat = trial.params["training.learning_rate"] > 5e-2
        assert steps == EPOCHS - 1 or (flat and steps <= 3), (steps, trial.params)
    assert trace.best == sorted(trace.best) and trace.times == sorted(trace.times)
    assert max(trace.times) <= 2000


def test_more_workers_do_more_in_the_same_simulated_time():
    one, _ = run_toy(workers=1, budget=600)
    four, _ = run_toy(workers=4, budget=600)
    assert four.epochs > 3 * one.epochs
    assert four.best_at(600) >= one.best_at(600) - 0.05
    assert math.isnan(one.best_at(1.0))  # nothing has reported yet


def test_a_gentler_asha_stops_fewer_trials():
    strict, _ = run_toy(4, 2000, experiment(reduction_factor=4))
    gentle, _ = run_toy(4, 2000, experiment(grace_period=3, reduction_factor=2))
    assert strict.stopped_early / strict.trials > gentle.stopped_early / gentle.trials


@pytest.mark.parametrize("kind", ["random_forest", "extra_trees"])
def test_the_fast_forest_predicts_what_scikit_learn_predicts(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    y = np.stack([x[:, 0] + rng.normal(size=80) * 0.1, x[:, 1] * x[:, 2]], axis=1)
    model = _regressor(kind, 0).fit(x[:60], y[:60])
    assert np.allclose(FastForest(model).predict(x[60:]), model.predict(x[60:]))


def test_curves_merge_into_one_file_and_the_encoder_reads_branches(tmp_path):
    header = Blackbox({"name": "toy"}, ["model.name", "a@cnn", "lr"], "rw_auc")
    path = tmp_path / "curves.json"
    first = Curve(0, {"model.name": "cnn", "a@cnn": 3, "lr": 1e-3}, "completed", 10, 1.5,
                  [[0.9, 0.91, 0.8, 0.7, 12.0], [0.95, 0.96, 0.9, 0.8, 11.0]])  # fmt: skip
    second = Curve(1, {"model.name": "mobilenet", "lr": 1e-1}, "nan_loss", 20, 2.0,
                   [[0.5, 0.5, 1.0, 0.0, 9.0]])  # fmt: skip
    assert merge_curve(path, header, second) == 1
    assert merge_curve(path, header, first) == 2
    assert merge_curve(path, header, first) == 2  # the same draw again replaces it
    loaded = load_blackbox(path)
    assert [c.index for c in loaded.curves] == [0, 1]
    assert loaded.curves[0].column("val_rw_auc") == [0.9, 0.95] and loaded.epochs == 2
    encoder = Encoder(loaded.curves, loaded.space)
    rows = encoder.matrix([c.params for c in loaded.curves])
    assert rows.shape == (2, 4)  # two model columns, a@cnn, lr (log10: spans 100x)
    assert rows[1, encoder.columns.index(("a@cnn", None))] < -1  # the branch not taken
    # log10(lr + a tenth of the smallest positive value), so zeros stay finite
    assert rows[0, encoder.columns.index(("lr", "log"))] == pytest.approx(math.log10(1.1e-3))


def test_epoch_noise_keeps_a_collapsed_epoch_a_dip_not_a_peak():
    """One epoch collapsing (0.97, 0.68, 0.97) is a dip of that epoch only: the simulated
    wobble lifts no neighbour, and a smooth rising curve wobbles not at all."""
    collapsing, rising = [0.97, 0.97, 0.68, 0.97, 0.98], [0.60, 0.70, 0.80, 0.85, 0.90]
    rows = [[[v, v, 0.9, 0.9, 10.0] for v in values] for values in (collapsing, rising)]
    curves = [Curve(i, {"lr": 0.1 * (i + 1)}, "completed", 1, 1.0, r) for i, r in enumerate(rows)]
    blackbox = Blackbox({"name": "toy"}, ["lr"], "rw_auc", curves)
    noise = epoch_noise(blackbox)
    assert noise.shape == (2, 5)
    assert noise[0, 2] < -0.2 and np.all(noise[0, [0, 1, 3, 4]] <= 0.0)
    assert np.allclose(noise[1], 0.0)
