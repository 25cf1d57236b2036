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
