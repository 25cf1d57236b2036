"""Trials killed or failing mid-search (issue 8, cases 1 and 6).

A trial's worker process gets SIGKILL in the middle of an epoch: with ``max_failures: 2``
it resumes from its last checkpoint and ends with exactly its epoch budget, each epoch once
in trials.csv. A trial that always fails is failed after 3 attempts while the others
finish. Without retries, a killed trial is failed on the leaderboard and in the persisted
Optuna study (never left RUNNING there: Optuna's heartbeat does not run under Ray Tune).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from results.board.leaderboard import read_csv_rows
from search.repair import referenced_checkpoints
from tests.conftest import REPO
from tests.search.conftest import experiment_dict, processes_with_marker, write_experiment

pytestmark = pytest.mark.slow

EPOCHS = 4


def trial_workers(marker: str) -> dict[int, str]:
    """pid -> working directory of each Ray trial worker started with the marker.

    Ray Tune runs each trial in its own folder, named after the trial id.
    """
    workers = {}
    for pid in processes_with_marker(marker):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if command.startswith(b"ray::ImplicitFunc"):
                workers[pid] = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
    return workers


def kill_mid_epoch(out: Path, marker: str, driver: subprocess.Popen, wanted) -> str:
    """SIGKILLs the worker of the first trial that `wanted` accepts, once it has trained
    epoch 1 and is inside epoch 2; returns its trial id.

    "Trained" means Tune registered the epoch's checkpoint (its saved state names it): the
    result reaches the callbacks, which write trials.csv, just before the registration.
    """
    deadline = time.time() + 300
    while time.time() < deadline:
        assert driver.poll() is None, "the search ended before a trial could be killed"
        board = {r["trial_id"]: r for r in read_csv_rows(out / "leaderboard.csv")}
        trained: dict[str, int] = {}
        for row in read_csv_rows(out / "trials.csv"):
            trained[row["trial_id"]] = max(trained.get(row["trial_id"], 0), int(row["epoch"]))
        for trial, epochs in trained.items():
            short = f"_{trial.rsplit('_', 1)[-1]}_"
            registered = any(short in p.parent.name for p in referenced_checkpoints(out))
            if epochs == 1 and trial in board and wanted(board[trial]) and registered:
                for pid, cwd in trial_workers(marker).items():
                    if short in Path(cwd).name:
                        os.kill(pid, signal.SIGKILL)
                        return trial
        time.sleep(0.05)
    raise AssertionError("no trial reached its first epoch in time")


def start(tmp_path, mini_root, cli_env, name: str, epochs: int = EPOCHS, size: int = 48, **search):
    out = tmp_path / "runs" / name
    data = experiment_dict(mini_root, out, **search)
    data["data"]["image_size"] = size
    data["space"] = {
        "model.name": "cnn",
        "model.params.num_blocks": {"choice": [2, 8]},  # 8 pooled blocks cannot fit 48 px
        "model.params.filters": 4,
        "model.params.head": "global_avg",
        "model.params.dense_units": [8],
    }
    data["training"]["epochs"] = epochs
    data["scheduler"] = {"type": "none"}
    experiment = write_experiment(tmp_path / f"{name}.yaml", data)
    driver = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", str(experiment)],
        cwd=REPO,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return out, driver


def optuna_states(out: Path, name: str) -> list[str]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")
    return [t.state.name for t in study.trials]


def test_a_killed_trial_resumes_to_its_exact_epochs_and_a_failing_one_stops_after_3_attempts(
    tmp_path, mini_root, cli_env
):
    # seed 2 with the random sampler draws num_blocks 2, 2, 2, 8: the last trial cannot build
    out, driver = start(
        tmp_path,
        mini_root,
        cli_env,
        "faults",
        num_samples=4,
        max_concurrent_trials=2,
        sampler="random",
        seed=2,
        max_failures=2,
    )
    killed = kill_mid_epoch(
        out, cli_env["PNEUMO_TEST_MARKER"], driver, lambda r: r["model.params.num_blocks"] == "2"
    )
    _stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]

    rows = {r["trial_id"]: r for r in read_csv_rows(out / "leaderboard.csv")}
    assert len(rows) == 4
    blocks = sorted(r["model.params.num_blocks"] for r in rows.values())
    assert blocks == ["2", "2", "2", "8"]  # the draw the comment above relies on
    history = read_csv_rows(out / "trials.csv")
    for trial, row in rows.items():
        epochs = [int(h["epoch"]) for h in history if h["trial_id"] == trial]
        if row["model.params.num_blocks"] == "8":
            assert (row["status"], row["attempts"], row["epochs_run"]) == ("failed", "3", "0")
            assert "too small for this many conv blocks" in row["error"], row["error"]
            assert epochs == []
            continue
        assert row["status"] == "completed", row
        assert epochs == list(range(1, EPOCHS + 1)), (trial, epochs)  # each epoch once
        assert row["epochs_run"] == str(EPOCHS)
        assert row["attempts"] == ("2" if trial == killed else "1"), (trial, row["attempts"])
    # the killed trial went on from its checkpoint: epochs up to k kept, the rest retrained
    resumed = [int(h["resumed_from_epoch"]) for h in history if h["trial_id"] == killed]
    k = max(resumed)
    assert 1 <= k < EPOCHS, resumed
    assert resumed == [0] * k + [k] * (EPOCHS - k), resumed
    assert sorted(optuna_states(out, "faults")) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]


def test_a_killed_trial_without_retries_is_failed_in_the_leaderboard_and_in_optuna(
    tmp_path, mini_root, cli_env
):
    # seed 4 draws num_blocks 2 for every trial: all can train
    out, driver = start(
        tmp_path,
        mini_root,
        cli_env,
        "noretry",
        num_samples=2,
        max_concurrent_trials=2,
        sampler="random",
        seed=4,
        max_failures=0,
    )
    killed = kill_mid_epoch(out, cli_env["PNEUMO_TEST_MARKER"], driver, lambda r: True)
    _stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    rows = {r["trial_id"]: r for r in read_csv_rows(out / "leaderboard.csv")}
    assert len(rows) == 2
    assert (rows[killed]["status"], rows[killed]["attempts"]) == ("failed", "1")
    assert rows[killed]["epochs_run"] == "1"  # what it trained before it died stays visible
    (other,) = set(rows) - {killed}
    assert rows[other]["status"] == "completed"
    assert sorted(optuna_states(out, "noretry")) == ["COMPLETE", "FAIL"]
