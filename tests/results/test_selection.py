"""Choosing among retrained candidates tied within the validation interval."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from pneumo_core.metrics import roc_auc
from pneumo_core.train.config import ObjectiveConfig, TrainConfig
from results.final.candidates import Retrained
from results.final.ensemble import ensemble_members
from results.final.selection import ranked_runs, select_run, tied_runs

LABELS = np.repeat([0, 1], 60)


class Scores:
    """A model whose validation probabilities are fixed (about 0.95 AUC on 120 images)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.probs = np.clip(LABELS * 0.45 + rng.uniform(0, 0.55, LABELS.size), 0, 1)
        self.given = 0

    def predict_on_batch(self, batch):
        out = self.probs[self.given : self.given + len(batch)]
        self.given += len(batch)
        return out[:, None]


def run(trial_id: str, value: float, params: int, model=None) -> Retrained:
    data = SimpleNamespace(arrays=lambda split: (np.zeros((LABELS.size, 2, 2, 1)), LABELS))
    config = TrainConfig(objective=ObjectiveConfig(metric="auc"))
    result = SimpleNamespace(model=model, param_count=params, status="completed")
    return Retrained(trial_id, 0, config, data, result, value)


def test_candidates_inside_the_best_interval_are_ties_and_the_simplest_is_kept():
    model = Scores()
    best_value = roc_auc(LABELS, model.probs)
    best = run("best", best_value, 5000, model)
    close = run("close", best_value - 0.01, 800)  # inside the interval, smaller
    far = run("far", best_value - 0.2, 100)  # smallest, but clearly worse
    tied, interval = tied_runs([best, close, far], seed=0)
    assert [r.trial_id for r in tied] == ["best", "close"]
    assert interval["low"] < best_value - 0.01 < interval["high"]
    assert interval["low"] > best_value - 0.2
    model.given = 0
    chosen, selection = select_run([best, close, far], "simplest", 0, lambda _: None)
    assert chosen is close and selection["chosen"] == "close/0"
    assert [t["trial_id"] for t in selection["tied"]] == ["best", "close"]
    chosen, selection = select_run([best, close, far], "objective", 0, lambda _: None)
    assert chosen is best and selection == {"rule": "objective", "chosen": "best/0"}


def test_an_unknown_rule_is_refused_by_its_key():
    from pneumo_errors import ConfigError
    from results.final.options import FinalOptions

    with pytest.raises(ConfigError, match="select"):
        FinalOptions(select="luck")


class Fixed:
    """A model with given validation probabilities."""

    def __init__(self, probs) -> None:
        self.probs = np.asarray(probs, dtype=np.float64)

    def predict_on_batch(self, batch):
        return self.probs[: len(batch)][:, None]


def test_greedy_ensemble_selection_adds_what_helps_the_mean_on_validation():
    from results.final.ensemble import greedy_members

    rng = np.random.default_rng(3)
    noise = [rng.normal(0, 0.35, LABELS.size) for _ in range(3)]
    # three members with independent errors: their mean ranks better than any one
    models = [Fixed(np.clip(LABELS * 0.5 + 0.25 + n, 0, 1)) for n in noise]
    useless = Fixed(np.full(LABELS.size, 0.5))  # a constant: never helps
    runs = [run(f"m{k}", roc_auc(LABELS, m.probs), 10, m) for k, m in enumerate(models)]
    runs.append(run("flat", 0.5, 10, useless))
    best = max(runs, key=lambda r: r.value)
    picked = greedy_members(runs, best, 5, lambda _: None)
    assert picked[0] is best and len(picked) >= 2
    assert all(r.trial_id != "flat" for r in picked)
    mean = np.mean([r.result.model.probs for r in picked], axis=0)
    assert roc_auc(LABELS, mean) > best.value


def test_a_member_picked_twice_weighs_twice_in_the_exported_ensemble():
    import keras

    from results.final.ensemble import build_ensemble

    def constant(value: float, name: str):
        inputs = keras.Input((4, 4, 1))
        flat = keras.layers.Flatten()(inputs)
        bias = keras.initializers.Constant(value)
        dense = keras.layers.Dense(1, "sigmoid", kernel_initializer="zeros", bias_initializer=bias)
        out = dense(flat)
        return keras.Model(inputs, out, name=name)

    a, b = constant(2.0, "a"), constant(-1.0, "b")
    ensemble = build_ensemble([a, a, b])
    got = float(ensemble.predict_on_batch(np.zeros((1, 4, 4, 1)))[0, 0])
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert got == pytest.approx((2 * sigmoid(2.0) + sigmoid(-1.0)) / 3, abs=1e-6)
    assert sorted(m.name for m in ensemble.layers if isinstance(m, keras.Model)) == [
        "member_1", "member_2"]  # fmt: skip


class ByPosition:
    """Fixed validation probabilities, read by position; ``fragile`` models give 0.5 to
    any image that is not the clean one (they break under every shift)."""

    def __init__(self, probs, clean=None) -> None:
        self.probs, self.clean, self.given = np.asarray(probs), clean, 0

    def predict_on_batch(self, batch):
        at = np.arange(self.given, self.given + len(batch)) % self.probs.size
        self.given += len(batch)
        out = self.probs[at].copy()
        if self.clean is not None:
            changed = np.any(batch != self.clean[at], axis=(1, 2, 3))
            out[changed] = 0.5
        return out[:, None]


def test_the_suite_rule_keeps_the_tied_candidate_that_survives_the_shifts():
    images = np.random.default_rng(0).integers(40, 200, (LABELS.size, 8, 8, 1), dtype=np.uint8)
    data = SimpleNamespace(arrays=lambda split: (images, LABELS))
    probs = Scores().probs
    value = roc_auc(LABELS, probs)

    def candidate(trial_id, model, value):
        run_ = run(trial_id, value, 1000, model)
        return Retrained(trial_id, 0, run_.config, data, run_.result, value)

    fragile = candidate("fragile", ByPosition(probs, clean=images.astype(np.float32)), value)
    sturdy = candidate("sturdy", ByPosition(probs), value - 0.005)  # tied, a little lower
    # a tied candidate at another resolution is scored on its own (larger) validation images
    larger = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    other = run("other", value - 0.006, 1000, ByPosition(probs))
    other = Retrained(
        "other", 0,
        dataclasses.replace(
            other.config, data=dataclasses.replace(other.config.data, image_size=16)
        ),
        SimpleNamespace(arrays=lambda split: (larger, LABELS)), other.result, other.value,
    )  # fmt: skip
    chosen, selection = select_run([fragile, sturdy, other], "suite", 0, lambda _: None)
    assert chosen is sturdy and selection["rule"] == "suite"
    means = {t["trial_id"]: t["val_suite_mean_rw_auc"] for t in selection["tied"]}
    assert means["sturdy"] > means["fragile"]
    assert means["other"] == pytest.approx(means["sturdy"])  # position-read: shift-proof too
    assert select_run([fragile, sturdy], "objective", 0, lambda _: None)[0] is fragile
    # an ensemble takes its partners in the rule's order too, on the chosen run's images
    third = candidate("third", ByPosition(probs), value - 0.008)
    runs = [fragile, sturdy, other, third]
    chosen, selection = select_run(runs, "suite", 0, lambda _: None)
    ranked = ranked_runs(runs, selection)
    assert chosen is sturdy and ranked[0] is sturdy and fragile in ranked
    members = ensemble_members(runs, chosen, 2, lambda _: None, ranked=ranked)
    assert [m.trial_id for m in members] == ["sturdy", "third"]  # not "fragile", the best
    assert ranked_runs(runs, {"rule": "objective", "chosen": "fragile/0"}) is None


def test_the_report_lists_what_the_suite_rule_compared():
    from results.report.families import section_selection

    tied = [
        {"run": "a/0", "trial_id": "a", "seed": 0, "value": 0.97, "param_count": 9,
         "val_suite_mean_rw_auc": 0.91},
        {"run": "b/0", "trial_id": "b", "seed": 0, "value": 0.96, "param_count": 5,
         "val_suite_mean_rw_auc": 0.94},
    ]  # fmt: skip
    interval = {"metric": "rw_auc", "value": 0.97, "low": 0.95, "high": 0.98}
    html = section_selection(
        {"selection": {"rule": "suite", "interval": interval, "tied": tied, "chosen": "b/0"}}
    )
    assert "val_suite_mean_rw_auc" in html and "<b>suite</b>" in html
    assert html.count("kept") == 2  # the intro sentence and the kept row


def board_row(trial_id: str, rank: int, median: str, stop: str = "", width: int = 8) -> dict:
    return {
        "trial_id": trial_id,
        "rank": str(rank),
        "median_epoch_s": median,
        "stop_reason": stop,
        "model.width": str(width),
    }


def test_the_cost_guard_skips_trials_past_the_per_epoch_limit_and_says_which(tmp_path):
    from pneumo_errors import PneumoError
    from results.final.candidates import ranked_candidates

    rows = [
        board_row("slow", 1, "1194.0", width=1),
        board_row("cut", 2, "40.0", stop="epoch_time_limit", width=2),
        board_row("fast", 3, "35.5", width=3),
        board_row("unknown", 4, "", width=4),  # no timing recorded: not held against it
        board_row("late", 5, "900.0", width=5),
    ]
    lines: list[str] = []
    kept = ranked_candidates(tmp_path, rows, 2, max_epoch_s=180.0, log=lines.append)
    assert [row["trial_id"] for row in kept] == ["fast", "unknown"]
    assert len(lines) == 2 and "slow" in lines[0] and "1194.0" in lines[0]
    assert "cut" in lines[1] and "epoch_time_limit" in lines[1]
    # no limit: the board's order, as before
    assert [r["trial_id"] for r in ranked_candidates(tmp_path, rows, 2)] == ["slow", "cut"]
    with pytest.raises(PneumoError, match="180 s per-epoch limit.*--max-epoch-s 0"):
        ranked_candidates(tmp_path, rows[:2], 1, max_epoch_s=180.0)


class Brightness:
    """A model whose probability is the image's mean brightness (or its opposite)."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def predict_on_batch(self, batch):
        mean = np.asarray(batch, dtype=np.float64).mean(axis=(1, 2, 3)) / 255.0
        return (mean if self.sign > 0 else 1.0 - mean)[:, None]


def test_select_on_site_ranks_the_tied_candidates_and_members_by_the_site(tmp_path):
    """Opted in, the site sample (bright pneumonias) ranks two validation ties: the
    candidate that orders the site right is kept, though validation put it second."""
    from PIL import Image

    from pneumo_core.data.config import DataConfig
    from results.final.site import site_rw_aucs

    for name, grey in (("NORMAL", 40), ("PNEUMONIA", 200)):
        (tmp_path / name).mkdir()
        for i in range(6):
            pixels = np.full((24, 24), grey + 3 * i, np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"p{name[0]}{i}-{i}.png")
    model = Scores()
    best_value = roc_auc(LABELS, model.probs)
    data = DataConfig(image_size=16, color_mode="grayscale", cache_dir=str(tmp_path / "cache"))
    runs = [
        run("wrong_on_site", best_value, 5000, model),
        run("right_on_site", best_value - 0.01, 800, Brightness()),
    ]
    for r in runs:
        r.data.config, r.data.class_names = data, ("NORMAL", "PNEUMONIA")
    runs[0].result.model = ProbsThenDark(model)
    lines: list[str] = []
    chosen, selection = select_run(
        runs,
        "site",
        0,
        lines.append,
        site_scores=lambda tied: site_rw_aucs(tied, tmp_path, lines.append),
    )
    assert chosen.trial_id == "right_on_site" and selection["site_selected"] is True
    scores = {t["trial_id"]: t["site_rw_auc"] for t in selection["tied"]}
    assert scores["right_on_site"] == 1.0 and scores["wrong_on_site"] < 0.5
    members = ensemble_members(runs, chosen, 2, lambda _: None, ranked=ranked_runs(runs, selection))
    assert [m.trial_id for m in members] == ["right_on_site", "wrong_on_site"]
    assert any("site rw_auc 1.0000" in line for line in lines)


class ProbsThenDark:
    """Validation: fixed probabilities (the best); the site: the darker, the likelier."""

    def __init__(self, scores: Scores) -> None:
        self.scores = scores

    def predict_on_batch(self, batch):
        if batch.shape[1:] == (2, 2, 1):  # the validation stand-in's images
            return self.scores.predict_on_batch(batch)
        return Brightness(-1.0).predict_on_batch(batch)


def test_select_on_site_needs_a_site_and_no_greedy():
    from pneumo_errors import ConfigError
    from results.final.options import FinalOptions

    with pytest.raises(ConfigError, match="select_on_site.*site sample"):
        FinalOptions(select_on_site=True)
    with pytest.raises(ConfigError, match="select_on_site.*greedy"):
        FinalOptions(select_on_site=True, site="x", greedy=True, ensemble=2)
    assert FinalOptions(select_on_site=True, site="x").select_on_site


def test_a_site_selected_model_says_so_in_the_report():
    from results.report.families import section_selection

    selection = {
        "rule": "site",
        "site_selected": True,
        "interval": {"metric": "rw_auc", "low": 0.9, "high": 0.95},
        "tied": [{"run": "a/0", "trial_id": "a", "seed": 0, "value": 0.93, "site_rw_auc": 0.8}],
        "chosen": "a/0",
    }
    html = section_selection({"selection": selection})
    assert "Site-selected" in html and "site_rw_auc" in html and "optimistic" in html
    assert "Site-selected" not in section_selection(
        {"selection": {**selection, "rule": "suite", "site_selected": False}}
    )


def test_a_site_selected_card_calls_the_site_figures_optimistic():
    from results.report.card_html import section_card

    site = {"images": 40, "folder": "/site", "used_for_choices": True}
    assert "site-selected" in section_card({"model_card": {"site_check": site}})
    measured = section_card({"model_card": {"site_check": {**site, "used_for_choices": False}}})
    assert "chose nothing" in measured and "site-selected" not in measured


def test_the_report_says_what_the_retraining_changed():
    from results.report.html import _retrain_levers

    line = _retrain_levers({"image_size": 160, "crop_scale": 0.25, "epochs": None})
    assert "at 160 px" in line and "crops down to 0.25" in line
    assert _retrain_levers({"image_size": None, "crop_scale": None}) == ""
