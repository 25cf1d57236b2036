"""A real search: Ray Tune + Optuna + Keras on real chest X-rays (chest_xray_mini, 32 px)."""

from __future__ import annotations

import math

import optuna
import pytest

from pneumo_core.configuration import from_dict
from results.board.leaderboard import read_csv_rows
from search.config import ExperimentConfig
from search.runner import run_experiment
from tests.search.conftest import experiment_dict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def six_trial_run(mini_root, tmp_path_factory):
    import ray

    out = tmp_path_factory.mktemp("runs") / "six"
    config = from_dict(ExperimentConfig, experiment_dict(mini_root, out))
    try:
        summary = run_experiment(config)
    finally:
        ray.shutdown()
    return summary, out


def test_six_trials_complete_with_a_consistent_leaderboard(six_trial_run):
    summary, out = six_trial_run
    rows = read_csv_rows(out / "leaderboard.csv")
    assert len(rows) == 6 and len({r["trial_id"] for r in rows}) == 6
    assert {r["status"] for r in rows} <= {"completed", "stopped_early", "failed"}
    ranked = [r for r in rows if r["rank"]]
    assert [int(r["rank"]) for r in ranked] == list(range(1, len(ranked) + 1))
    objectives = [float(r["objective"]) for r in ranked]
    assert objectives == sorted(objectives, reverse=True)
    history = read_csv_rows(out / "trials.csv")
    for row in rows:
        epochs = [h for h in history if h["trial_id"] == row["trial_id"]]
        assert len(epochs) == int(row["epochs_run"])
        if row["rank"]:
            best = max(epochs, key=lambda h: float(h["val_rw_auc"]))
            assert float(best["val_rw_auc"]) == pytest.approx(float(row["objective"]))
            assert int(row["best_epoch"]) == int(best["epoch"])
            assert 0.0 <= float(row["auc"]) <= 1.0
        assert row["model.name"] == "cnn" and float(row["training.learning_rate"]) > 0
    assert summary.counts == {s: sum(r["status"] == s for r in rows) for s in summary.counts}
    for name in ("experiment.yaml", "data_summary.json", "optuna.db"):
        assert (out / name).is_file()


def test_asha_stops_a_trial_early_and_optuna_records_it_as_pruned(six_trial_run):
    _, out = six_trial_run
    rows = read_csv_rows(out / "leaderboard.csv")
    stopped = [r for r in rows if r["status"] == "stopped_early"]
    assert stopped, "ASHA (grace 1, reduction 2) stopped no trial"
    assert all(int(r["epochs_run"]) < 3 and r["stop_reason"] == "asha" for r in stopped)
    completed = [r for r in rows if r["status"] == "completed"]
    assert all(int(r["epochs_run"]) == 3 for r in completed)
    study = optuna.load_study(study_name="six", storage=f"sqlite:///{out / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "RUNNING" not in states
    assert states.count("PRUNED") == len(stopped)
    assert states.count("COMPLETE") == len(completed)
    assert states.count("FAIL") == sum(r["status"] == "failed" for r in rows)
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            assert math.isfinite(trial.value)


def test_a_trial_that_raises_is_failed_and_the_rest_finish(six_trial_run):
    _, out = six_trial_run
    rows = read_csv_rows(out / "leaderboard.csv")
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed, "the 8-block option at 32 px should fail"
    for row in failed:
        assert row["model.params.num_blocks"] == "8"
        assert "too small" in row["error"] and row["rank"] == ""
    assert all(r["model.params.num_blocks"] != "8" for r in rows if r["status"] != "failed")
    assert len(rows) - len(failed) >= 3


def test_a_trial_sees_only_the_gpus_ray_assigned():
    from search.trial import _assigned_gpus

    machine = ["gpu0", "gpu1", "gpu2", "gpu3"]
    assert _assigned_gpus(machine, []) == []  # a CPU trial hides every GPU
    assert _assigned_gpus(machine, ["2"]) == ["gpu2"]  # Ray did not set CUDA_VISIBLE_DEVICES
    assert _assigned_gpus(machine, [1, 3]) == ["gpu1", "gpu3"]
    assert _assigned_gpus(["gpu0"], ["3"]) == ["gpu0"]  # CUDA_VISIBLE_DEVICES=3: one visible


def test_trials_cut_by_the_time_budget_end_as_stopped_early(mini_root, tmp_path):
    import ray

    out = tmp_path / "budget"
    raw = experiment_dict(mini_root, out, num_samples=-1, max_concurrent_trials=1)
    raw["training"]["epochs"] = 1000  # no trial can finish before the budget runs out (50
    # epochs of this tiny model took 12 s on an idle 2-core machine: under the 15 s budget)
    raw["scheduler"] = {"type": "none"}
    raw["search"]["time_budget_s"] = 15
    try:
        summary = run_experiment(from_dict(ExperimentConfig, raw))
    finally:
        ray.shutdown()
    assert not summary.interrupted  # the budget ended it: complete, exit code 0
    rows = read_csv_rows(out / "leaderboard.csv")
    cut = [r for r in rows if r["stop_reason"] == "time_budget"]
    assert cut and all(r["status"] == "stopped_early" for r in cut)
    assert not any(r["status"] == "running" for r in rows)
    study = optuna.load_study(study_name=raw["name"], storage=f"sqlite:///{out / 'optuna.db'}")
    assert "RUNNING" not in {t.state.name for t in study.trials}


def test_a_family_out_search_ranks_trials_by_their_worst_held_out_family(mini_root, tmp_path):
    import ray

    out = tmp_path / "family"
    raw = experiment_dict(mini_root, out, num_samples=2, max_concurrent_trials=2)
    raw["space"] = {**raw["space"], "model.name": {"choice": {"cnn": {
        "model.params.num_blocks": 2, "model.params.filters": 4,
        "model.params.head": "global_avg", "model.params.dense_units": [8]}}}}  # fmt: skip
    raw["training"]["epochs"] = 2
    raw["objective"] = {"family_out": "worst"}
    raw["scheduler"] = {"type": "none"}
    try:
        run_experiment(from_dict(ExperimentConfig, raw))
    finally:
        ray.shutdown()
    rows = read_csv_rows(out / "leaderboard.csv")
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    study = optuna.load_study(study_name=raw["name"], storage=f"sqlite:///{out / 'optuna.db'}")
    told = sorted(t.value for t in study.trials)
    assert told == pytest.approx(sorted(float(r["objective"]) for r in rows), abs=1e-9)
    for row in rows:
        families = [
            float(row[f"family_{f}_rw_auc"]) for f in ("NORMAL2-IM", "IM", "bacteria", "virus")
        ]
        assert float(row["objective"]) == pytest.approx(min(families))
        assert float(row["family_worst_rw_auc"]) == pytest.approx(min(families))


def test_a_trial_past_the_per_epoch_time_limit_is_cut_recorded_and_told_to_optuna(
    mini_root, tmp_path
):
    import ray

    out = tmp_path / "slow"
    raw = experiment_dict(mini_root, out, num_samples=2, max_concurrent_trials=2)
    raw["space"] = {**raw["space"], "model.name": {"choice": {"cnn": {
        "model.params.num_blocks": 2, "model.params.filters": 4,
        "model.params.head": "global_avg", "model.params.dense_units": [8]}}}}  # fmt: skip
    raw["scheduler"] = {"type": "none"}
    raw["search"]["max_epoch_s"] = 0.001  # every epoch runs past it
    try:
        run_experiment(from_dict(ExperimentConfig, raw))
    finally:
        ray.shutdown()
    rows = read_csv_rows(out / "leaderboard.csv")
    assert len(rows) == 2
    for row in rows:
        assert (row["status"], row["stop_reason"]) == ("stopped_early", "epoch_time_limit")
        assert row["epochs_run"] == "1" and float(row["median_epoch_s"]) > 0.001
        assert math.isfinite(float(row["objective"]))  # the cut epoch is scored as it stands
    study = optuna.load_study(study_name=raw["name"], storage=f"sqlite:///{out / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]  # stopped, as by ASHA
