"""A real search and its final stage, shared by the final-stage tests (run once per session)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pneumo_core.configuration import from_dict
from search.config import ExperimentConfig
from tests.conftest import REPO
from tests.search.conftest import experiment_dict

#: Cheap CNNs that all build at 32 px.
SMALL_SPACE = {
    "model.name": "cnn",
    "model.params.num_blocks": {"choice": [2, 3]},
    "model.params.filters": {"choice": [4, 8]},
    "model.params.head": "global_avg",
    "model.params.dense_units": [8],
    "training.learning_rate": {"float": [1.0e-3, 1.0e-2], "log": True},
}


def cli(*args: str, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Runs ``pneumo-search`` in a fresh Python process."""
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


@pytest.fixture(scope="session")
def searched_run(mini_root, tmp_path_factory) -> Path:
    """A finished 3-trial search on chest_xray_mini at 32 px (real Ray, Optuna, Keras)."""
    import ray

    from search.runner import run_experiment

    out = tmp_path_factory.mktemp("final-runs") / "small"
    raw = experiment_dict(mini_root, out, num_samples=3)
    raw["space"] = SMALL_SPACE
    raw["training"]["epochs"] = 2
    try:
        run_experiment(from_dict(ExperimentConfig, raw))
    finally:
        ray.shutdown()
    return out


@pytest.fixture(scope="session")
def final_outcome(searched_run):
    """``final`` on that search: top 2 configurations retrained, 200 bootstrap resamples,
    with the family-out check and a 2-fold label audit."""
    from results.final import FinalOptions
    from search.final_stage import run_final

    return run_final(
        searched_run,
        FinalOptions(top=2, n_boot=200, gallery=3, family_check=True, label_audit=2),
        log=lambda _: None,
    )
