"""The final stage of the session's real search (``searched_run``, tests/conftest.py),
shared by the final-stage tests (run once per session)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, built_once


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

    def flip(site: Path) -> None:
        for source, target in (("NORMAL", "PNEUMONIA"), ("PNEUMONIA", "NORMAL")):
            (site / target).mkdir(parents=True)
            for path in sorted((mini_root / "test" / source).iterdir())[:20]:
                shutil.copy(path, site / target / path.name)

    return built_once(tmp_path_factory, "flipped_site", flip)


@pytest.fixture(scope="session")
def final_outcome(searched_run, flipped_site, tmp_path_factory):
    """``final`` on that search: top 2 configurations retrained, 200 bootstrap resamples,
    with the family-out check, a 2-fold label audit and the flipped site check (run once
    for all xdist workers; each reads ``report.json`` back)."""
    from results.final.stage import FinalOptions, FinalOutcome
    from search.final_stage import run_final

    def final(_: Path) -> None:
        options = FinalOptions(
            top=2, n_boot=200, gallery=3, family_check=True, label_audit=2, site=str(flipped_site)
        )
        run_final(searched_run, options, log=lambda _: None)

    built_once(tmp_path_factory, "final_outcome", final)
    folder = searched_run / "final"
    return FinalOutcome(folder, json.loads((folder / "report.json").read_text()))
