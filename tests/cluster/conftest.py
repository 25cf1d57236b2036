"""Real multi-node Ray clusters on this machine (two raylets on 127.0.0.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.search.conftest import kill_marked, processes_with_marker, unique_marker

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayStartCluster:
    """A head and a worker node started with ``ray start`` (token authentication on).

    Both nodes sit on one machine, so each gets its own dashboard-agent port (the default
    52365 would go to whichever starts first, leaving the head without a job agent).

    Every process it starts carries PNEUMO_TEST_MARKER, so :meth:`stop` kills exactly
    those (and nothing another test or user started).
    """

    def __init__(self, marker: str, home: Path) -> None:
        self.marker = marker
        self.port = free_port()
        self.dashboard_port = free_port()
        self.env = {
            **os.environ,
            "PNEUMO_TEST_MARKER": marker,
            "RAY_AUTH_MODE": "token",
            # `ray start` does not create a token (ray.init does): without one in
            # ~/.ray/auth_token it refuses to start, so each cluster gets its own
            "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or uuid.uuid4().hex,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "ray"), *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, cwd=REPO,
        )  # fmt: skip

    def start(self) -> None:
        head = self.ray(
            "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
            "--num-cpus=1", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}", "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_port()}",
        )  # fmt: skip
        assert head.returncode == 0, head.stderr + head.stdout
        worker = self.ray(
            "start", f"--address=127.0.0.1:{self.port}", "--node-ip-address=127.0.0.1",
            "--num-cpus=1", f"--dashboard-agent-listen-port={free_port()}",
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr + worker.stdout

    def submit(self, *entrypoint: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """``ray job submit`` of this repository; retried while the job agent starts."""
        deadline = time.monotonic() + 60
        while True:
            proc = self.ray(
                "job", "submit", "--address", self.jobs_url, "--working-dir", str(REPO),
                "--", *entrypoint, timeout=timeout,
            )  # fmt: skip
            if "No available agent" not in proc.stderr or time.monotonic() > deadline:
                return proc
            time.sleep(2)

    @property
    def jobs_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def stop(self) -> None:
        kill_marked(self.marker)
        deadline = time.monotonic() + 20
        while processes_with_marker(self.marker) and time.monotonic() < deadline:
            time.sleep(0.5)
            kill_marked(self.marker)


@pytest.fixture(scope="module")
def ray_start_cluster(tmp_path_factory):
    """A two-node `ray start` cluster, shared by the module's tests (none changes it)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    cluster = RayStartCluster(unique_marker(f"cluster-{tmp_path.name}"), tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
    assert processes_with_marker(cluster.marker) == [], "Ray processes left behind"
