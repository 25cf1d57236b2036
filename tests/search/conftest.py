"""Search tests: real Ray (a local embedded cluster), real Optuna, real Keras, real X-rays."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, WEIGHTS

#: A tiny conditional space: cheap CNNs, one option that cannot be built at 32 px
#: (8 pooled blocks), so some trial fails while the rest finish.
TINY_SPACE = {
    "model.name": {
        "choice": {
            "cnn": {
                "model.params.num_blocks": {"choice": [2, 3, 8]},
                "model.params.filters": {"choice": [4, 8]},
                "model.params.head": "global_avg",
                "model.params.dense_units": [8],
            }
        }
    },
    "training.learning_rate": {"float": [1.0e-4, 1.0e-2], "log": True},
}


def experiment_dict(root: Path, out: Path, **search) -> dict:
    """A small experiment on chest_xray_mini at 32 px."""
    search.setdefault("num_samples", 6)
    search.setdefault("max_concurrent_trials", 2)
    return {
        "name": out.name,
        "data": {"root": str(root), "image_size": 32, "cache_dir": str(out.parent / "cache")},
        "space": TINY_SPACE,
        "training": {"epochs": 3, "batch_size": 64, "early_stopping_patience": 0},
        "weights": {"dirs": [str(WEIGHTS)]},
        "search": {"sampler": "tpe", "seed": 0, **search},
        "resources": {"cpu": 1},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "output_dir": str(out),
    }


def write_experiment(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def unique_marker(name: str) -> str:
    """A PNEUMO_TEST_MARKER value unique to this pytest process (tests run in 2 workers)."""
    return f"{name}-{os.getpid()}"


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of processes whose environment holds PNEUMO_TEST_MARKER=marker."""
    found = []
    needle = f"PNEUMO_TEST_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_marked(marker: str) -> None:
    """SIGKILLs every process started with the marker (drivers, raylets, workers)."""
    for pid in processes_with_marker(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cli_env(tmp_path):
    """Environment for CLI subprocesses; every process they start is killed afterwards."""
    marker = unique_marker(tmp_path.name)
    env = {**os.environ, "PNEUMO_TEST_MARKER": marker, "PYTHONPATH": str(REPO)}
    env["PNEUMO_CACHE_DIR"] = str(tmp_path / "cache")
    yield env
    kill_marked(marker)
