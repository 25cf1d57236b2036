"""The final stage of the session's real search (``searched_run``, tests/conftest.py),
shared by the final-stage tests (run once per session)."""

from __future__ import annotations

import shutil
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
def flipped_site(mini_root, tmp_path_factory):
    """A hostile site sample: 20 test normals filed as PNEUMONIA and 20 test pneumonias
    filed as NORMAL, so a site that steered any choice would show in the threshold or the
    selection (and the site's own AUC falls below 0.5)."""
    site = tmp_path_factory.mktemp("flipped_site")
    for source, target in (("NORMAL", "PNEUMONIA"), ("PNEUMONIA", "NORMAL")):
        (site / target).mkdir()
        for path in sorted((mini_root / "test" / source).iterdir())[:20]:
            shutil.copy(path, site / target / path.name)
    return site


@pytest.fixture(scope="session")
def final_outcome(searched_run, flipped_site):
    """``final`` on that search: top 2 configurations retrained, 200 bootstrap resamples,
    with the family-out check, a 2-fold label audit and the flipped site check."""
    from results.final.stage import FinalOptions
    from search.final_stage import run_final

    return run_final(
        searched_run,
        FinalOptions(
            top=2, n_boot=200, gallery=3, family_check=True, label_audit=2, site=str(flipped_site)
        ),
        log=lambda _: None,
    )
