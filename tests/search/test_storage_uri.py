"""A run stored at an S3 URI: a real S3 API (moto's server on 127.0.0.1), real Ray Tune.

The driver is killed mid-search, then `resume URI` runs from an empty mirror (as on another
machine): everything it needs comes back from the store, and the store ends with the full
leaderboard, the Optuna study and Tune's checkpoints.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import optuna
import pyarrow.fs
import pytest

from tests.conftest import REPO
from tests.reliability.test_driver_kill import ENDED, resume_to_the_end
from tests.search.conftest import experiment_dict, kill_marked, write_experiment
from tests.search.test_cli import cli, one_line_error

pytestmark = pytest.mark.slow

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_endpoint(tmp_path):
    """An S3 API on 127.0.0.1 (moto's server) with a bucket `pneumo`; yields host:port."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the S3 server did not start"
                time.sleep(0.2)
        endpoint = f"127.0.0.1:{port}"
        store, _ = _filesystem(endpoint, "pneumo")
        store.create_dir("pneumo")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _filesystem(endpoint: str, path: str):
    os.environ.update(CREDENTIALS)
    query = f"endpoint_override={endpoint}&scheme=http&allow_bucket_creation=true"
    return pyarrow.fs.FileSystem.from_uri(f"s3://{path}?{query}")


def read_board(store) -> list[dict]:
    """The leaderboard as the store holds it (empty before the first upload)."""
    path = "pneumo/runs/remote/leaderboard.csv"
    if store.get_file_info(path).type != pyarrow.fs.FileType.File:
        return []
    with store.open_input_stream(path) as stream:
        return list(csv.DictReader(io.StringIO(stream.read().decode())))


def test_a_run_at_an_s3_uri_survives_a_killed_driver_and_resumes_from_the_store(
    s3_endpoint, mini_root, tmp_path, cli_env
):
    uri = f"s3://pneumo/runs/remote?endpoint_override={s3_endpoint}&scheme=http"
    env = {**cli_env, **CREDENTIALS, "PNEUMO_MIRROR_DIR": str(tmp_path / "mirror-a")}
    data = experiment_dict(mini_root, tmp_path / "unused", num_samples=4, max_concurrent_trials=1)
    data["output_dir"] = uri
    experiment = write_experiment(tmp_path / "remote.yaml", data)
    store, _ = _filesystem(s3_endpoint, "pneumo")

    driver = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", str(experiment)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 300
    while sum(r["status"] in ENDED for r in read_board(store)) < 1:  # the store's board
        assert driver.poll() is None and time.time() < deadline, "no trial ended in time"
        time.sleep(0.5)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    kill_marked(env["PNEUMO_TEST_MARKER"])
    assert 1 <= sum(r["status"] in ENDED for r in read_board(store)) < 4

    # running it again into the same URI is refused: resume is the way
    assert "already holds a search" in one_line_error(cli("run", str(experiment), env=env))
    # resume on "another machine": the first mirror is gone, everything comes from the store
    shutil.rmtree(tmp_path / "mirror-a")
    resume_to_the_end(uri, {**env, "PNEUMO_MIRROR_DIR": str(tmp_path / "mirror-b")})

    rows = read_board(store)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert all(r["status"] in ENDED for r in rows)
    selector = pyarrow.fs.FileSelector("pneumo/runs/remote", recursive=True)
    names = [info.path for info in store.get_file_info(selector)]
    for needed in ("optuna.db", "trials.csv", "experiment.yaml", "run_guard.json"):
        assert f"pneumo/runs/remote/{needed}" in names
    assert any("/checkpoint_" in n and n.endswith("manifest.json") for n in names)
    # the stored study holds every trial, ended (the resumed searcher wrote to this run's file)
    pyarrow.fs.copy_files(
        "pneumo/runs/remote/optuna.db", str(tmp_path / "study.db"), source_filesystem=store
    )
    study = optuna.load_study(study_name=data["name"], storage=f"sqlite:///{tmp_path / 'study.db'}")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert len(states) >= 4 and optuna.trial.TrialState.RUNNING not in states
    assert any(n.rsplit("/", 1)[-1].startswith("experiment_state-") for n in names)
