"""A trial's newest checkpoint deleted or damaged before `resume` (issue 8, case 3).

The trial resumes from the newest valid checkpoint before it, and ends with each epoch once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pneumo_core.runtime import import_tensorflow
from pneumo_errors import CheckpointError
from results.board.leaderboard import read_csv_rows
from search.repair import referenced_checkpoints
from tests.conftest import REPO
from tests.reliability.test_trial_faults import start
from tests.search.conftest import kill_marked

EPOCHS = 6


def damage(path: Path) -> None:
    """Flips bytes in the middle of a file (it still opens: only the manifest can tell)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def saved_checkpoints(tmp_path: Path, epochs: int) -> Path:
    """checkpoint_000000.. folders written by EpochState.save for a tiny model."""
    import_tensorflow()
    import keras

    from pneumo_core.train.loop import EpochState

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    history = []
    for epoch in range(1, epochs + 1):
        model.set_weights([np.full((4, 1), epoch, "float32"), np.zeros(1, "float32")])
        history.append({"epoch": epoch, "loss": 1.0 / epoch})
        state = EpochState(epoch, history[-1], list(history), epoch, 0.5, model, None)
        previous = tmp_path / f"checkpoint_{epoch - 2:06d}" if epoch > 1 else None
        state.save(tmp_path / f"checkpoint_{epoch - 1:06d}", previous=previous)
    return tmp_path


def test_latest_valid_checkpoint_skips_damaged_and_incomplete_ones(tmp_path):
    from pneumo_core.train.loop import ResumeState

    folder = saved_checkpoints(tmp_path, 4)
    newest = folder / "checkpoint_000002"  # the one Tune names; 000003 is newer, not recorded
    assert ResumeState.load_latest_valid(newest)[0].epochs_done == 3
    damage(newest / "last.weights.h5")
    with pytest.raises(CheckpointError, match="last.weights.h5: damaged"):
        ResumeState.load(newest)
    state, problems = ResumeState.load_latest_valid(newest)
    assert state.epochs_done == 2  # the copy of the one before, kept inside it
    assert state.folder == str(newest / "previous")
    assert [p.split(":")[0] for p in problems] == ["checkpoint_000002"]
    (newest / "previous" / "manifest.json").unlink()  # a save that did not finish
    (folder / "checkpoint_000001" / "manifest.json").unlink()
    state, problems = ResumeState.load_latest_valid(newest)
    assert state.epochs_done == 1  # checkpoint_000000; never the newer checkpoint_000003
    assert [p.split(":")[0] for p in problems] == [
        "checkpoint_000002", "previous", "checkpoint_000001"
    ]  # fmt: skip
    shutil.rmtree(folder / "checkpoint_000000")
    assert ResumeState.load_latest_valid(newest)[0] is None  # none valid: train from scratch


@pytest.mark.slow
def test_resume_after_the_newest_checkpoints_were_deleted_or_damaged(tmp_path, mini_root, cli_env):
    cli_env = {**cli_env, "TUNE_GLOBAL_CHECKPOINT_S": "0"}  # Tune saves its state each step
    # seed 4 draws num_blocks 2 for both trials (see test_trial_faults)
    out, driver = start(
        tmp_path, mini_root, cli_env, "damaged", num_samples=2, max_concurrent_trials=2,
        sampler="random", seed=4, max_failures=1, epochs=EPOCHS, size=96,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline:  # until the saved state names a 2nd checkpoint of each
        indices = {}
        for path in referenced_checkpoints(out):
            trial = path.parent.name
            indices[trial] = max(indices.get(trial, -1), int(path.name.rsplit("_", 1)[1]))
        if len(indices) == 2 and min(indices.values()) >= 1:
            break
        assert driver.poll() is None
        time.sleep(0.05)
    else:
        raise AssertionError("the trials did not save 2 checkpoints in time")
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate()
    kill_marked(cli_env["PNEUMO_TEST_MARKER"])

    referenced = referenced_checkpoints(out)
    trials = sorted(read_csv_rows(out / "leaderboard.csv"), key=lambda r: r["trial_id"])
    expected = {}
    for how, row in zip(("delete", "damage"), trials, strict=True):
        short = row["trial_id"].rsplit("_", 1)[-1]
        mine = sorted(p for p in referenced if f"_{short}_" in p.parent.name)
        newest = mine[-1]
        if how == "delete":  # with it goes the copy of the one before: start over
            expected[row["trial_id"]] = 0
            shutil.rmtree(newest)
        else:  # resumes from the copy of the one before
            before = json.loads((newest / "previous" / "state.json").read_text())
            expected[row["trial_id"]] = before["epochs_done"]
            assert expected[row["trial_id"]] >= 1
            damage(newest / "last.weights.h5")

    resumed = subprocess.run(
        [sys.executable, "-m", "search.cli", "resume", str(out)],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "is gone; its trial resumes from an older valid checkpoint" in resumed.stderr

    rows = {r["trial_id"]: r for r in read_csv_rows(out / "leaderboard.csv")}
    history = read_csv_rows(out / "trials.csv")
    for trial, fallback in expected.items():
        assert rows[trial]["status"] == "completed", rows[trial]
        epochs = [int(h["epoch"]) for h in history if h["trial_id"] == trial]
        assert epochs == list(range(1, EPOCHS + 1)), (trial, epochs)
        after = [int(h["resumed_from_epoch"]) for h in history if h["trial_id"] == trial]
        assert after[fallback:] == [fallback] * (EPOCHS - fallback), (trial, fallback, after)
