"""Searches on real two-node Ray clusters: through the Jobs API, and losing a node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

from pneumo_core.configuration import from_dict
from results.board.leaderboard import read_csv_rows
from search.config import ExperimentConfig
from tests.conftest import REPO, SMALL_SPACE
from tests.search.conftest import experiment_dict

pytestmark = pytest.mark.slow


def cluster_experiment(mini_root, out, **search) -> dict:
    raw = experiment_dict(mini_root, out, **search)
    raw["space"] = SMALL_SPACE
    raw["training"]["epochs"] = 3
    raw["scheduler"] = {"type": "none"}  # every trial runs to its end: both nodes stay busy
    return raw


# It runs first: the `ray start` cluster the other tests share is not up yet.
def test_losing_a_worker_node_mid_search_retries_its_trials_on_the_survivor(mini_root, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from search.runner import run_experiment

    out = tmp_path / "nodeloss"
    raw = cluster_experiment(mini_root, out, num_samples=4, max_failures=2)
    # Epochs long enough (64 px, 5 of them) that the node dies mid-trial, not after it.
    raw["data"]["image_size"] = 64
    raw["training"]["epochs"] = EPOCHS = 5
    config = from_dict(ExperimentConfig, raw)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    worker_id = worker.node_id
    killed = threading.Event()

    def kill_worker_after_its_first_epoch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            epochs = read_csv_rows(out / "trials.csv") if (out / "trials.csv").exists() else []
            if any(e.get("node_id") == worker_id for e in epochs):
                cluster.remove_node(worker, allow_graceful=False)
                killed.set()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_worker_after_its_first_epoch, daemon=True)
    killer.start()
    try:
        summary = run_experiment(config, address=cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    killer.join(timeout=5)
    assert killed.is_set(), "no trial ever ran on the worker node"
    rows = read_csv_rows(out / "leaderboard.csv")
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert {r["status"] for r in rows} == {"completed"}, [(r["status"], r["error"]) for r in rows]
    epochs = read_csv_rows(out / "trials.csv")
    for row in rows:  # every trial has each of its epochs exactly once
        mine = [int(e["epoch"]) for e in epochs if e["trial_id"] == row["trial_id"]]
        assert sorted(mine) == list(range(1, EPOCHS + 1)), (row["trial_id"], mine)
    moved = [
        r["trial_id"]
        for r in rows
        if any(e["node_id"] == worker_id for e in epochs if e["trial_id"] == r["trial_id"])
        and r["node_id"] != worker_id
    ]
    assert moved, "the trial of the lost node did not finish on the survivor"
    assert summary.counts == {"completed": 4}


def test_a_search_submitted_as_a_ray_job_runs_on_both_nodes(ray_start_cluster, mini_root, tmp_path):
    out = tmp_path / "jobrun"
    experiment = tmp_path / "job.yaml"
    experiment.write_text(yaml.safe_dump(cluster_experiment(mini_root, out, num_samples=4)))
    proc = ray_start_cluster.submit(sys.executable, "-m", "search.cli", "run", str(experiment))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr
    rows = read_csv_rows(out / "leaderboard.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    epochs = read_csv_rows(out / "trials.csv")
    assert len(epochs) == 4 * 3
    nodes = {e["node_id"] for e in epochs}
    assert len(nodes) == 2, f"trials ran on {len(nodes)} node(s)"
    assert {r["node_id"] for r in rows} <= nodes


def test_the_jobs_api_refuses_a_request_without_the_token(ray_start_cluster):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{ray_start_cluster.jobs_url}/api/jobs/", timeout=10)
    assert error.value.code == 401


def test_the_embedded_default_starts_its_own_ray_beside_a_running_cluster(ray_start_cluster):
    """With no --address, a search gets a local Ray of its own: not the `ray start` cluster
    this machine already runs (plain ray.init() would join that one)."""
    code = (
        "import ray; from search.runner import init_ray; init_ray(None); "
        "print('GCS', ray.get_runtime_context().gcs_address); ray.shutdown()"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (address,) = re.findall(r"^GCS (\S+)$", proc.stdout, re.M)
    assert not address.endswith(f":{ray_start_cluster.port}"), address
