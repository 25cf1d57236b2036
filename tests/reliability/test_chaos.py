"""Chaos on a two-node local cluster (issue 8, case 4).

During a small search the worker node is killed (no grace) as soon as a trial trains on
it, then a fresh worker node joins, twice over. Every trial must reach its end state, be on
the leaderboard exactly once and have each of its epochs exactly once.
"""

from __future__ import annotations

import threading
import time

import pytest

from pneumo_core.configuration import from_dict
from results.board.leaderboard import read_csv_rows
from search.config import ExperimentConfig
from tests.cluster.test_cluster import cluster_experiment

pytestmark = pytest.mark.slow

KILLS = 2
TRIALS = 5
EPOCHS = 5


def test_worker_node_killed_and_restarted_twice_every_trial_ends_once(mini_root, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from search.runner import run_experiment

    out = tmp_path / "chaos"
    raw = cluster_experiment(mini_root, out, num_samples=TRIALS, max_failures=KILLS + 1)
    raw["data"]["image_size"] = 64  # epochs long enough for a node to die mid-trial
    raw["training"]["epochs"] = EPOCHS
    config = from_dict(ExperimentConfig, raw)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1)]
    cluster.wait_for_nodes()  # both nodes registered before the first trial is placed
    killed: list[str] = []
    outcome: dict = {}

    def search() -> None:  # in a thread: adding a node must happen in the main thread
        try:
            outcome["summary"] = run_experiment(config, address=cluster.address)
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    driver = threading.Thread(target=search, daemon=True)
    driver.start()
    try:
        deadline = time.monotonic() + 400
        while driver.is_alive() and time.monotonic() < deadline:
            path = out / "trials.csv"
            epochs = read_csv_rows(path) if path.exists() else []
            current = workers[-1]
            if len(killed) < KILLS and any(e.get("node_id") == current.node_id for e in epochs):
                cluster.remove_node(current, allow_graceful=False)
                killed.append(current.node_id)
                time.sleep(1.0)
                workers.append(cluster.add_node(num_cpus=1))  # a replacement joins
            time.sleep(0.2)
        driver.join(timeout=60)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert len(killed) == KILLS, f"only {len(killed)} worker node(s) were killed"
    rows = read_csv_rows(out / "leaderboard.csv")
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == TRIALS and len(set(ids)) == TRIALS, ids
    assert {r["status"] for r in rows} == {"completed"}, [(r["status"], r["error"]) for r in rows]
    assert summary.counts == {"completed": TRIALS}
    epochs = read_csv_rows(out / "trials.csv")
    for row in rows:
        mine = [int(e["epoch"]) for e in epochs if e["trial_id"] == row["trial_id"]]
        assert mine == list(range(1, EPOCHS + 1)), (row["trial_id"], mine)
    # trials really ran on the nodes that died and on the replacements
    nodes = {e["node_id"] for e in epochs}
    assert set(killed) <= nodes
    assert sum(int(r["attempts"]) > 1 for r in rows) >= 1
