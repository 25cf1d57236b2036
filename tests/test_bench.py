"""The benchmark scripts run in their --quick mode, so they cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_cache_speed_quick(mini_root):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "cache_speed.py"), "--quick"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ratio = float(re.search(r"ratio uncached / cached\s*:\s*([\d.]+)x", proc.stdout).group(1))
    assert ratio > 1.0, proc.stdout  # the cache must at least beat decoding


def run_quick(script: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--quick"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_trial_overhead_quick(mini_root):
    out = run_quick("trial_overhead.py")
    ratio = float(re.search(r"ratio trial / direct\s*:\s*([\d.]+)", out).group(1))
    assert 0.2 < ratio < 5.0, out  # both sides ran and were timed


def test_memory_flat_quick(mini_root):
    out = run_quick("memory_flat.py")
    for n in range(1, 5):  # every one of the 4 trials, also two ending at the same moment
        assert re.search(rf"after trial\s+{n} ended", out), out
    ratio = float(re.search(r"ratio last \d / first \d ends\s*:\s*([\d.]+)", out).group(1))
    assert ratio > 0.0


def test_concurrency_quick(mini_root):
    out = run_quick("concurrency.py")
    assert re.search(r"1 concurrent: 2 trials in", out) and re.search(
        r"2 concurrent: 2 trials", out
    )
    ratio = float(re.search(r"ratio 2 concurrent / 1 concurrent.*:\s*([\d.]+)", out).group(1))
    assert ratio > 1.2, out  # two single-CPU trials at once on 2 cores must overlap
