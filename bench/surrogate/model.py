"""The surrogate: configuration -> learning curve and epoch cost, fitted on real curves.

Features come from the Optuna parameters as a sampler proposes them: numbers stay numbers
(log10 where a parameter spans two decades or more, as learning rates do), text choices
become one column per choice, and a parameter of a branch not taken (a CNN's filters for
a MobileNet) reads :data:`MISSING`. Tree ensembles split on that as on any value.

Two scikit-learn regressors with one output per epoch: the validation objective at each
epoch (the learning curve) and the log seconds of each epoch (with the set-up time). The
kind (random forest, extra trees, k nearest neighbours, gradient boosting) is chosen by
cross-validation: the rank correlation of predicted and real final score (the best
epoch's objective, what a trial that ran the whole budget would report) on configurations
left out of the fit. Written here over scikit-learn because Syne Tune's blackbox
repository fits no surrogate to a blackbox of our own format, and YAHPO's surrogates are
ONNX networks trained offline for their own scenarios.

A simulated trial adds noise: the epoch-to-epoch jitter of a real curve drawn at random
(each real curve's deviation from its own running median of 3 epochs), so a
configuration's reported scores wobble the way real ones do around the surrogate's smooth
prediction. A median, not a mean: one collapsed epoch (0.97, 0.68, 0.97) stays a dip of
that epoch instead of lifting its neighbours into false peaks that a trial's best-so-far
would keep. The jitter is clipped to its 1st-99th percentiles: a search of hundreds of
trials would otherwise keep the one rare spike (+0.08 once in 288 real epochs) as its
best, measuring the noise's tail rather than the searcher. The out-of-fold residuals
are not used as noise: with a few dozen curves they are mostly model error (MAE 0.03, as
large as the spread between good and mediocre configurations) and would make every
simulated search's best a draw of the largest residual, not of the best configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from bench.surrogate.blackbox import Blackbox, Curve

__all__ = [
    "MODEL_KINDS",
    "Encoder",
    "Surrogate",
    "cross_validate",
    "epoch_noise",
    "fit_surrogate",
]

#: The value of a parameter in a branch not taken.
MISSING = -10.0
#: Surrogate kinds compared by cross-validation.
MODEL_KINDS = ("random_forest", "extra_trees", "knn", "gradient_boosting")


class Encoder:
    """Optuna parameters -> a numeric feature row, fitted on the collected curves."""

    def __init__(self, curves: list[Curve], names: list[str]) -> None:
        self.columns: list[tuple[str, Any]] = []  # (name, None | category | "log")
        for name in names:
            values = [c.params[name] for c in curves if name in c.params]
            if not values:
                continue
            if all(isinstance(v, (int, float)) for v in values):  # bools are ints too
                numbers = [float(v) for v in values]
                positive = [v for v in numbers if v > 0]
                spans = positive and min(numbers) >= 0 and max(positive) / min(positive) >= 100
                self.columns.append((name, "log" if spans else None))
            else:
                for category in sorted({str(v) for v in values}):
                    self.columns.append((name, ("is", category)))
        self._floor = {
            name: min(float(c.params[name]) for c in curves if c.params.get(name, 0) > 0) / 10
            for name, kind in self.columns
            if kind == "log"
        }

    def row(self, params: dict[str, Any]) -> list[float]:
        """The features of one configuration."""
        out = []
        for name, kind in self.columns:
            if name not in params:
                out.append(MISSING)
            elif isinstance(kind, tuple):
                out.append(1.0 if str(params[name]) == kind[1] else 0.0)
            elif kind == "log":
                out.append(math.log10(float(params[name]) + self._floor[name]))
            else:
                out.append(float(params[name]))
        return out

    def matrix(self, params: list[dict[str, Any]]) -> np.ndarray:
        """The features of several configurations."""
        return np.array([self.row(p) for p in params], dtype=np.float64)


def _regressor(kind: str, seed: int):
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "random_forest":
        return RandomForestRegressor(
            n_estimators=150, min_samples_leaf=2, max_features=0.5, random_state=seed
        )
    if kind == "extra_trees":
        return ExtraTreesRegressor(
            n_estimators=150, min_samples_leaf=2, max_features=0.7, random_state=seed
        )
    if kind == "knn":
        return make_pipeline(StandardScaler(), KNeighborsRegressor(5, weights="distance"))
    if kind == "gradient_boosting":
        return MultiOutputRegressor(
            HistGradientBoostingRegressor(
                max_iter=150, learning_rate=0.05, min_samples_leaf=3, random_state=seed
            )
        )
    raise ValueError(f"unknown surrogate kind {kind!r}; valid: {', '.join(MODEL_KINDS)}")


def targets(blackbox: Blackbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The curves as arrays: objective per epoch, log seconds per epoch (plus log set-up
    seconds last), and whether each curve trained at all.

    A curve that stopped early (diverged) keeps its last finite objective for the epochs
    it did not run, and its mean epoch seconds; a curve that never trained (``error``)
    is marked untrained and left out of the fits.
    """
    epochs = blackbox.epochs
    values = np.full((len(blackbox.curves), epochs), np.nan)
    costs = np.full((len(blackbox.curves), epochs + 1), np.nan)
    trained = np.zeros(len(blackbox.curves), dtype=bool)
    for i, curve in enumerate(blackbox.curves):
        scores = [v for v in curve.column(blackbox_metric_column(blackbox)) if math.isfinite(v)]
        seconds = [s for s in curve.column("seconds") if math.isfinite(s) and s > 0]
        if not scores or not seconds:
            continue
        trained[i] = True
        row = scores + [scores[-1]] * (epochs - len(scores))
        values[i] = row[:epochs]
        per_epoch = seconds + [float(np.mean(seconds))] * (epochs - len(seconds))
        costs[i, :epochs] = np.log(per_epoch[:epochs])
        costs[i, epochs] = math.log(max(curve.setup_s, 0.1))
    return values, costs, trained


def blackbox_metric_column(blackbox: Blackbox) -> str:
    """The epoch column holding the objective."""
    return f"val_{blackbox.metric}"


def final_score(curves: np.ndarray) -> np.ndarray:
    """What a trial that ran every epoch reports: its best epoch's objective."""
    return np.max(curves, axis=1)


def cross_validate(
    blackbox: Blackbox, kind: str, *, folds: int = 5, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Held-out accuracy of one surrogate kind.

    Returns:
        ``spearman_final`` (median over repeats of the rank correlation between predicted
        and real final score on left-out configurations), ``mae_final``, ``spearman_cost``
        (total seconds).
    """
    from sklearn.model_selection import KFold

    values, costs, trained = targets(blackbox)
    encoder = Encoder(blackbox.curves, blackbox.space)
    x = encoder.matrix([c.params for c in blackbox.curves])[trained]
    y, c = values[trained], costs[trained]
    rhos, maes, cost_rhos = [], [], []
    for repeat in range(repeats):
        predicted = np.zeros_like(y)
        predicted_cost = np.zeros_like(c)
        splitter = KFold(folds, shuffle=True, random_state=seed + repeat)
        for train, test in splitter.split(x):
            model = _regressor(kind, seed).fit(x[train], y[train])
            predicted[test] = model.predict(x[test])
            cost_model = _regressor(kind, seed).fit(x[train], c[train])
            predicted_cost[test] = cost_model.predict(x[test])
        rhos.append(spearmanr(final_score(predicted), final_score(y)).statistic)
        maes.append(float(np.mean(np.abs(final_score(predicted) - final_score(y)))))
        total = np.exp(predicted_cost[:, :-1]).sum(axis=1)
        cost_rhos.append(spearmanr(total, np.exp(c[:, :-1]).sum(axis=1)).statistic)
    return {
        "kind": kind,
        "configurations": int(trained.sum()),
        "spearman_final": float(np.median(rhos)),
        "spearman_final_repeats": [float(r) for r in rhos],
        "mae_final": float(np.median(maes)),
        "spearman_cost": float(np.median(cost_rhos)),
    }


def epoch_noise(blackbox: Blackbox) -> np.ndarray:
    """Each trained real curve's deviation from its own centred running median of 3 epochs
    (the first and last epochs repeat at the edges), clipped to its 1st-99th percentiles:
    the wobble a simulated trial adds."""
    from scipy.ndimage import median_filter

    values, _, trained = targets(blackbox)
    values = values[trained]
    jitter = values - median_filter(values, size=(1, 3), mode="nearest")
    low, high = np.percentile(jitter, [1, 99])
    return np.clip(jitter, low, high)


class FastForest:
    """A fitted random forest or extra-trees regressor, predicting one row in about a
    millisecond: every tree is walked at once with NumPy (scikit-learn's ``predict`` pays
    a Python call per tree, some 40 ms for one row of 150 trees, which would make the
    surrogate, not the samplers, the cost of a simulated search). Same numbers as
    ``predict`` (tested)."""

    def __init__(self, forest: Any) -> None:
        trees = [t.tree_ for t in forest.estimators_]
        nodes = max(t.node_count for t in trees)
        outputs = trees[0].value.shape[1]
        self.feature = np.zeros((len(trees), nodes), dtype=np.int64)
        self.threshold = np.zeros((len(trees), nodes))
        self.left = np.full((len(trees), nodes), -1, dtype=np.int64)
        self.right = np.full((len(trees), nodes), -1, dtype=np.int64)
        self.value = np.zeros((len(trees), nodes, outputs))
        for k, tree in enumerate(trees):
            n = tree.node_count
            self.feature[k, :n] = np.maximum(tree.feature, 0)
            self.threshold[k, :n] = tree.threshold
            self.left[k, :n] = tree.children_left
            self.right[k, :n] = tree.children_right
            self.value[k, :n] = tree.value[:, :, 0]
        self.depth = max(t.max_depth for t in trees)
        self._rows = np.arange(len(trees))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``x`` (the forest's mean over trees)."""
        out = []
        for row in np.atleast_2d(x):
            node = np.zeros(len(self._rows), dtype=np.int64)
            for _ in range(self.depth):
                left = self.left[self._rows, node]
                leaf = left < 0
                if leaf.all():
                    break
                go_left = row[self.feature[self._rows, node]] <= self.threshold[self._rows, node]
                child = np.where(go_left, left, self.right[self._rows, node])
                node = np.where(leaf, node, child)
            out.append(self.value[self._rows, node].mean(axis=0))
        return np.array(out)


def fast(model: Any) -> Any:
    """:class:`FastForest` for a forest, the model itself otherwise."""
    return (
        FastForest(model)
        if hasattr(model, "estimators_") and hasattr(model.estimators_[0], "tree_")
        else model
    )


@dataclass
class Surrogate:
    """A fitted surrogate: predicts curves and costs of configurations.

    Attributes:
        encoder: Parameters -> features.
        curve_model: Features -> objective per epoch.
        cost_model: Features -> log seconds per epoch, then log set-up seconds.
        noise: Real curves' epoch jitter (:func:`epoch_noise`), one drawn per trial.
        epochs: The epoch budget.
        kind: The regressor kind.
    """

    encoder: Encoder
    curve_model: Any
    cost_model: Any
    noise: np.ndarray
    epochs: int
    kind: str

    def predict(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
        """``(objective per epoch, seconds per epoch, set-up seconds)`` of one configuration,
        without noise."""
        x = np.array([self.encoder.row(params)])
        curve = self.curve_model.predict(x)[0]
        cost = np.exp(self.cost_model.predict(x)[0])
        return curve, cost[:-1], float(cost[-1])

    def sample(
        self, params: dict[str, Any], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``(noisy curve, noise-free curve, seconds per epoch, set-up seconds)``: the
        prediction plus one drawn jitter curve (clipped to [0, 1])."""
        curve, seconds, setup = self.predict(params)
        noise = self.noise[rng.integers(len(self.noise))]
        return np.clip(curve + noise, 0.0, 1.0), curve, seconds, setup


def fit_surrogate(blackbox: Blackbox, kind: str, seed: int = 0) -> Surrogate:
    """Fits :class:`Surrogate` of ``kind`` on every trained curve of ``blackbox``."""
    values, costs, trained = targets(blackbox)
    encoder = Encoder(blackbox.curves, blackbox.space)
    x = encoder.matrix([c.params for c in blackbox.curves])[trained]
    curve_model = fast(_regressor(kind, seed).fit(x, values[trained]))
    cost_model = fast(_regressor(kind, seed).fit(x, costs[trained]))
    return Surrogate(encoder, curve_model, cost_model, epoch_noise(blackbox), blackbox.epochs, kind)
