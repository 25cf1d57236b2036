"""A local Ray started by the tool listens on the loopback interface only (issue 8, case 10).

The Jobs API's refusal of a request without the token is tested with the two-node cluster
(tests/cluster/test_cluster.py::test_the_jobs_api_refuses_a_request_without_the_token).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.search.conftest import processes_with_marker, unique_marker

DRIVER = """
import json, sys, time
from search.runner import init_ray
init_ray(None)
import ray

@ray.remote
class Probe:
    def ping(self):
        return 1

probe = Probe.remote()
assert ray.get(probe.ping.remote()) == 1   # a worker process is up too
print("READY", flush=True)
sys.stdin.readline()                       # the test lists sockets meanwhile
ray.shutdown()
"""


def _listening_sockets() -> dict[str, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket (IPv4 and IPv6)."""
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found[fields[9]] = (socket.inet_ntop(family, raw), int(port, 16))
    return found


def _sockets_of(pid: int, listening: dict) -> list[tuple[str, int]]:
    held = []
    folder = Path(f"/proc/{pid}/fd")
    for fd in folder.iterdir() if folder.is_dir() else []:
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in listening:
            held.append(listening[link[8:-1]])
    return held


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_a_local_ray_listens_on_loopback_only(tmp_path):
    marker = unique_marker(f"exposure-{tmp_path.name}")
    env = {**os.environ, "PNEUMO_TEST_MARKER": marker, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], cwd=REPO, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert driver.stdout.readline().strip() == "READY", driver.stderr.read()[-2000:]
        listening = _listening_sockets()
        held = {pid: _sockets_of(pid, listening) for pid in processes_with_marker(marker)}
        held[driver.pid] = _sockets_of(driver.pid, listening)
    finally:
        driver.communicate("\n", timeout=120)
    everything = [address for addresses in held.values() for address in addresses]
    assert len(everything) >= 4, held  # GCS, raylet (2), the worker: all seen
    exposed = [a for a in everything if not _is_loopback(a[0])]
    assert exposed == [], json.dumps({str(k): v for k, v in held.items()})
    deadline = time.time() + 30
    while processes_with_marker(marker) and time.time() < deadline:
        time.sleep(0.5)
    assert processes_with_marker(marker) == []  # and the tool's Ray is gone afterwards
