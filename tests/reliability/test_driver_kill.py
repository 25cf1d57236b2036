"""The driver killed mid-search (SIGKILL), then `resume`: nothing lost (issue 8, case 2)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import cloudpickle
import optuna
import pytest

from results.board.leaderboard import read_csv_rows
from tests.conftest import REPO
from tests.search.conftest import TINY_SPACE, experiment_dict, kill_marked, write_experiment

pytestmark = pytest.mark.slow

ENDED = {"completed", "stopped_early", "failed"}
TRIALS = 5  # the killed search's


def resume_to_the_end(out, env, timeout: int = 420) -> None:
    """Runs `pneumo-search resume OUT` and checks it finished.

    A resume still running after ``timeout`` seconds gets SIGABRT, so that Python's
    faulthandler prints every thread's stack into the failure message (a hang seen once in
    the S3 test could not be reproduced; this is how the next one shows where it waits).
    """
    resumed = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "resume", str(out)],
        cwd=REPO, env={**env, "PYTHONFAULTHANDLER": "1"}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = resumed.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        resumed.send_signal(signal.SIGABRT)
        stdout, stderr = resumed.communicate(timeout=60)
        raise AssertionError(f"resume hung for {timeout} s; stacks:\n{stderr[-6000:]}") from None
    assert resumed.returncode == 0, (stdout[-3000:], stderr[-3000:])


def tear_limiter_state(run_dir, trial_ids) -> None:
    """Adds ``trial_ids`` to the saved concurrency limiter's live trials.

    A driver killed while Tune uploads its state file by file (at a storage URI) can leave
    a limiter state that disagrees with the saved trial list; this makes that happen for
    sure, so resume must free the slots those trials hold (it waited forever before).
    """
    paths = list(run_dir.glob("search_gen_state-*.json"))
    assert paths, f"no saved search state in {run_dir}"
    for path in paths:
        state = cloudpickle.loads(path.read_bytes())
        (limiter,) = [v for k, v in state.items() if k.startswith("name:") and "Limiter" in k]
        limiter["live_trials"] |= set(trial_ids)
        path.write_bytes(cloudpickle.dumps(state))


def start_driver(experiment, env, ended: int, out, **popen) -> subprocess.Popen:
    """Starts `pneumo-search run` and returns once `ended` trials have ended."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", str(experiment)],
        cwd=REPO, env=env, start_new_session=True, **popen,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline:
        rows = read_csv_rows(out / "leaderboard.csv")
        if sum(r["status"] in ENDED for r in rows) >= ended:
            return driver
        assert driver.poll() is None, f"the driver ended before {ended} trials ended"
        time.sleep(0.5)
    raise AssertionError(f"{ended} trials did not end in time")


def test_killed_driver_then_resume_keeps_every_trial_once(mini_root, tmp_path, cli_env):
    out = tmp_path / "runs" / "killed"
    data = experiment_dict(mini_root, out, num_samples=TRIALS, max_concurrent_trials=1)
    data["space"] = {**TINY_SPACE, "model.name": {"choice": {"cnn": {
        **TINY_SPACE["model.name"]["choice"]["cnn"], "model.params.num_blocks": {"choice": [2, 3]},
    }}}}  # fmt: skip
    experiment = write_experiment(tmp_path / "killed.yaml", data)
    driver = start_driver(
        experiment, cli_env, 2, out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    kill_marked(cli_env["PNEUMO_TEST_MARKER"])  # the dead driver's Ray processes
    before = {r["trial_id"]: r for r in read_csv_rows(out / "leaderboard.csv")}
    history_before = read_csv_rows(out / "trials.csv")
    done_before = {t for t, r in before.items() if r["status"] in ENDED}
    assert len(before) < TRIALS or any(r["status"] == "running" for r in before.values())
    # the saved limiter holds a slot for a trial Tune never saved and one that ended
    tear_limiter_state(out, {"f00dcafe", sorted(done_before)[0]})

    resume_to_the_end(out, cli_env)

    rows = read_csv_rows(out / "leaderboard.csv")
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == TRIALS and len(set(ids)) == TRIALS, ids
    assert all(r["status"] in ENDED for r in rows)
    after = {r["trial_id"]: r for r in rows}
    for trial_id in done_before:  # finished before the kill: kept as they were
        for key in ("status", "objective", "epochs_run", "best_epoch"):
            assert after[trial_id][key] == before[trial_id][key], (trial_id, key)
    history = read_csv_rows(out / "trials.csv")
    for trial_id in done_before:
        old = [h for h in history_before if h["trial_id"] == trial_id]
        new = [h for h in history if h["trial_id"] == trial_id]
        assert new == old, f"{trial_id} was trained again"
    for row in rows:
        epochs = [int(h["epoch"]) for h in history if h["trial_id"] == row["trial_id"]]
        assert epochs == list(range(1, int(row["epochs_run"]) + 1)), (row["trial_id"], epochs)
    # the searcher continued the same Optuna study instead of starting a new one
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{out / 'optuna.db'}")
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers))) and len(numbers) >= TRIALS
    # ...and its sampler went on from its saved state: a sampler re-created from the seed
    # would suggest the first trials' learning rates again
    rates = {t.number: t.params.get("training.learning_rate") for t in study.trials}
    first = [rates[n] for n in sorted(rates)][: len(before)]
    later = [rates[n] for n in sorted(rates)][len(before) :]
    assert later and not set(later) & set(first), (first, later)
    board_rates = sorted(float(r["training.learning_rate"]) for r in rows)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
    # (a trial the killed driver had asked Optuna for but not yet given its parameters is
    # told FAIL on resume with no parameters: it never reached the board)
    assert all(any(math.isclose(b, t.params.get("training.learning_rate", math.nan))
                   for t in finished)
               for b in board_rates)  # fmt: skip
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states, states  # no orphan left RUNNING after the kill
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == sum(
        r["status"] in ("completed", "stopped_early") for r in rows
    )


def test_ctrl_c_stops_cleanly_and_resume_finishes(mini_root, tmp_path, cli_env):
    out = tmp_path / "runs" / "interrupted"
    data = experiment_dict(mini_root, out, num_samples=4, max_concurrent_trials=1)
    data["space"] = {
        "model.name": "cnn",
        "model.params.num_blocks": 2,
        "model.params.filters": {"choice": [4, 8]},
        "training.learning_rate": {"float": [1.0e-3, 1.0e-2], "log": True},
    }
    experiment = write_experiment(tmp_path / "interrupted.yaml", data)
    driver = start_driver(
        experiment, cli_env, 1, out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole group
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, (stdout[-2000:], stderr[-2000:])
    assert f"pneumo-search resume {out}" in stdout
    assert "Traceback" not in stderr
    resume_to_the_end(out, cli_env)
    rows = read_csv_rows(out / "leaderboard.csv")
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert all(r["status"] in ENDED for r in rows)


def test_a_trial_tune_forgot_is_closed_as_failed_not_left_running(tmp_path):
    from types import SimpleNamespace

    from results.board.leaderboard import merge_rows
    from search.callbacks import LeaderboardCallback

    merge_rows(tmp_path / "leaderboard.csv", [
        {"rank": "", "trial_id": "known", "status": "running", "objective": 0.8},
        {"rank": "", "trial_id": "forgotten", "status": "running", "objective": "nan"},
    ], "max")  # fmt: skip
    callback = LeaderboardCallback(str(tmp_path), "rw_auc", "max", 3, resolve=dict)
    callback.setup()  # what a resumed driver reads back
    callback.on_experiment_end(trials=[SimpleNamespace(trial_id="known")])
    rows = {r["trial_id"]: r for r in read_csv_rows(tmp_path / "leaderboard.csv")}
    assert (rows["forgotten"]["status"], rows["forgotten"]["stop_reason"]) == (
        "failed", "driver_lost"
    )  # fmt: skip
    assert rows["known"]["status"] == "running"  # Tune still knows it: left to Tune
