from __future__ import annotations

import json
import math

import pytest

from pneumo_errors import PneumoError
from results.board.leaderboard import TrialRecord, leaderboard_rows, read_csv_rows, write_csv_atomic
from results.board.view import render_leaderboard


def record(trial_id: str, values: list[float], status="completed", **params) -> TrialRecord:
    r = TrialRecord(trial_id, params=params or {"model.name": "cnn"}, status=status)
    for epoch, value in enumerate(values, start=1):
        r.add_epoch({"epoch": epoch, "val_rw_auc": value, "val_auc": value / 2})
    return r


def test_ranking_uses_best_epoch_and_puts_nan_and_failures_last():
    rows = leaderboard_rows(
        [
            record("t3", [0.7, 0.9, 0.8]),
            record("t1", [math.nan, math.nan]),
            record("t2", [0.95]),
            record("t4", [], status="failed"),
            record("t0", [0.9]),  # ties t3 at 0.9: trial id decides
        ],
        "rw_auc",
        "max",
    )
    assert [r["trial_id"] for r in rows] == ["t2", "t0", "t3", "t1", "t4"]
    assert [r["rank"] for r in rows] == [1, 2, 3, "", ""]
    t3 = rows[2]
    assert (t3["objective"], t3["best_epoch"], t3["epochs_run"], t3["auc"]) == (0.9, 2, 3, 0.45)


def test_min_mode_and_retried_epochs_are_not_duplicated():
    r = record("a", [0.5, 0.4])
    r.add_epoch({"epoch": 2, "val_log_loss": 0.3, "val_rw_auc": 0.4})  # retried epoch 2
    r.history[0]["val_log_loss"] = 0.6
    rows = leaderboard_rows([r], "log_loss", "min")
    assert rows[0]["epochs_run"] == 2 and rows[0]["objective"] == 0.3


def test_atomic_write_round_trips(tmp_path):
    trial = record("x", [0.8], **{"model.params.dense_units": [64, 32]})
    rows = leaderboard_rows([trial], "rw_auc", "max")
    write_csv_atomic(tmp_path / "leaderboard.csv", rows)
    back = read_csv_rows(tmp_path / "leaderboard.csv")
    assert back[0]["trial_id"] == "x"
    assert json.loads(back[0]["model.params.dense_units"]) == [64, 32]
    assert [p.name for p in tmp_path.iterdir()] == ["leaderboard.csv"]  # no temp file left


def test_render_formats(tmp_path):
    rows = leaderboard_rows(
        [record("1e5", [0.8]), record("abc", [0.9]), record("zzz", [0.7])], "rw_auc", "max"
    )
    write_csv_atomic(tmp_path / "leaderboard.csv", rows)
    table = render_leaderboard(tmp_path, top=2)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["rank", "trial_id", "status"]
    assert len(lines) == 3 and lines[1].split()[1] == "abc" and lines[2].split()[1] == "1e5"
    as_json = json.loads(render_leaderboard(tmp_path, top=0, fmt="json"))
    assert [r["trial_id"] for r in as_json] == ["abc", "1e5", "zzz"]
    by_id = render_leaderboard(tmp_path, top=0, sort="trial_id", fmt="csv").splitlines()
    assert [line.split(",")[1] for line in by_id[1:]] == ["1e5", "abc", "zzz"]
    with pytest.raises(PneumoError, match="unknown column 'nope'"):
        render_leaderboard(tmp_path, sort="nope")
    with pytest.raises(PneumoError, match="no leaderboard"):
        render_leaderboard(tmp_path / "missing")


def test_json_leaderboard_is_typed_numbers_lists_and_nulls(tmp_path):
    rows = leaderboard_rows(
        [
            record(
                "12345678", [0.7, 0.9], **{"model.name": "cnn", "model.params.dense_units": [64]}
            ),
            record("t1", [math.nan]),
            record("t4", [], status="failed"),
        ],
        "rw_auc",
        "max",
    )
    write_csv_atomic(tmp_path / "leaderboard.csv", rows)
    board = json.loads(render_leaderboard(tmp_path, top=0, fmt="json"))
    best, nan, failed = board
    assert best["rank"] == 1 and isinstance(best["rank"], int)
    assert best["objective"] == 0.9 and best["best_epoch"] == 2
    assert best["trial_id"] == "12345678"  # an id stays text even when it looks like a number
    assert best["model.params.dense_units"] == [64] and best["model.name"] == "cnn"
    assert nan["rank"] is None and nan["objective"] is None  # NaN: null, not "nan"
    assert failed["auc"] is None and failed["status"] == "failed"


def test_trials_rows_carry_each_trials_hyperparameters():
    from results.board.leaderboard import trials_rows

    rows = trials_rows([record("b", [0.5, 0.6], **{"model.name": "cnn", "training.lr": 0.1})])
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["model.name"] == "cnn" and r["training.lr"] == 0.1 for r in rows)


def test_trials_inside_the_best_ones_validation_interval_are_marked_as_ties():
    def with_interval(trial_id, value, low, high):
        r = TrialRecord(trial_id, params={"model.name": "cnn"}, status="completed")
        r.add_epoch({"epoch": 1, "val_rw_auc": value, "val_rw_auc_low": low,
                     "val_rw_auc_high": high})  # fmt: skip
        return r

    rows = leaderboard_rows(
        [
            with_interval("a", 0.990, 0.980, 0.996),
            with_interval("b", 0.985, 0.975, 0.992),  # inside a's interval: a tie
            with_interval("c", 0.970, 0.950, 0.985),  # below a's low end
            record("d", [math.nan]),
        ],
        "rw_auc",
        "max",
    )
    assert [(r["trial_id"], r["tied_with_best"]) for r in rows] == [
        ("a", "yes"), ("b", "yes"), ("c", "no"), ("d", "")]  # fmt: skip
    assert (rows[0]["objective_low"], rows[0]["objective_high"]) == (0.980, 0.996)
    # without an interval on the best trial nothing is called a tie
    plain = leaderboard_rows([record("x", [0.9]), record("y", [0.89])], "rw_auc", "max")
    assert [r["tied_with_best"] for r in plain] == ["", ""]


def test_a_new_best_epoch_carries_a_bootstrap_interval_around_its_score():
    import numpy as np

    from pneumo_core.train.callbacks import ValidationMetrics

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    scorer = ValidationMetrics(
        np.zeros((120, 4, 4, 1), np.uint8), labels, objective="auc", higher_is_better=True,
        tau=0.9, w=0.5, batch_size=64)  # fmt: skip

    class Model:
        stop_training = False

        class optimizer:
            learning_rate = 0.001

        def predict_on_batch(self, batch):
            return np.clip(labels[: len(batch)] * 0.3 + rng.uniform(0, 0.7, len(batch)), 0, 1)[
                :, None
            ]

        def get_weights(self):
            return []

    scorer.set_model(Model())
    scorer.on_epoch_end(0, {"loss": 0.5})
    row = scorer.history[0]
    assert row["val_auc_low"] < row["val_auc"] < row["val_auc_high"]
    assert row["val_auc_high"] - row["val_auc_low"] > 0.01  # 120 images: a real spread


def test_where_filters_rows_before_top_and_sort(tmp_path):
    from results.board.view import read_leaderboard, select_rows

    rows = leaderboard_rows(
        [
            record("a", [0.8], **{"model.name": "cnn"}),
            record("b", [0.9], **{"model.name": "mobilenet"}),
            record("c", [0.7], **{"model.name": "cnn"}),
            record("d", [], status="failed", **{"model.name": "cnn"}),
        ],
        "rw_auc",
        "max",
    )
    write_csv_atomic(tmp_path / "leaderboard.csv", rows)
    frame = read_leaderboard(tmp_path / "leaderboard.csv")
    assert frame["trial_id"].tolist() == ["b", "a", "c", "d"]
    assert frame["status"].iloc[3] == "failed"  # cells as written, text
    cnn = select_rows(frame, where=["model.name=cnn", "status=completed"])
    assert cnn["trial_id"].tolist() == ["a", "c"]
    assert select_rows(frame, where=["model.name=cnn"], top=1)["trial_id"].tolist() == ["a"]
    low_first = select_rows(frame, sort="rank", where=["model.name=cnn"])
    assert low_first["trial_id"].tolist()[:2] == ["c", "a"]  # numbers descending
    as_json = json.loads(render_leaderboard(tmp_path, top=0, fmt="json", where=["trial_id=b"]))
    assert [r["trial_id"] for r in as_json] == ["b"] and as_json[0]["rank"] == 1
    with pytest.raises(PneumoError, match="unknown column 'colour'"):
        select_rows(frame, where=["colour=red"])
    with pytest.raises(PneumoError, match="expected COLUMN=VALUE"):
        select_rows(frame, where=["status"])
