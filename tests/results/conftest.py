"""The final stage of the session's real search (``searched_run``, tests/conftest.py),
shared by the final-stage tests (run once per session)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def cli(*args: str, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Runs ``pneumo-search`` in a fresh Python process."""
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


@pytest.fixture(scope="session")
def final_outcome(searched_run):
    """``final`` on that search: top 2 configurations retrained, 200 bootstrap resamples,
    with the family-out check and a 2-fold label audit."""
    from results.final.stage import FinalOptions
    from search.final_stage import run_final

    return run_final(
        searched_run,
        FinalOptions(top=2, n_boot=200, gallery=3, family_check=True, label_audit=2),
        log=lambda _: None,
    )
