"""The test-site check (``final --site``): measured after every choice, choosing nothing."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from pneumo_core.metrics import specificity_at_sensitivity
from pneumo_errors import DataError


def test_specificity_at_sensitivity_uses_the_sites_own_threshold():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.7, 0.5, 0.8, 0.9, 0.95])
    # sensitivity 1.0 needs the cut at 0.5: normals under it are 0.1, 0.2 -> 2 of 4
    assert specificity_at_sensitivity(y, p, 1.0) == 0.5
    # 0.75 keeps 3 of 4 positives (cut 0.8): normals under it -> 4 of 4
    assert specificity_at_sensitivity(y, p, 0.75) == 1.0
    assert math.isnan(specificity_at_sensitivity(np.ones(3, int), np.ones(3), 0.9))


def test_a_one_class_site_is_refused(tmp_path):
    from types import SimpleNamespace

    from results.final.site import SiteSample, site_check

    images = SimpleNamespace(labels=np.zeros(4, int), root=str(tmp_path), relpaths=("a",) * 4)
    with pytest.raises(DataError, match="both classes"):
        site_check(
            SiteSample(images, frozenset()),
            np.full(4, 0.3),
            0.5,
            target=0.95,
            train_patients=set(),
            class_names=("NORMAL", "PNEUMONIA"),
            seed=0,
            n_boot=50,
        )


def test_a_missing_site_folder_is_named(tmp_path):
    from pneumo_core.data.config import DataConfig
    from results.final.site import load_site

    with pytest.raises(DataError, match="nowhere.*does not exist"):
        load_site(tmp_path / "nowhere", DataConfig(), ("NORMAL", "PNEUMONIA"))


@pytest.mark.slow
def test_the_site_section_measures_a_hostile_site_that_steers_nothing(final_outcome):
    """The fixture's site has its labels flipped: had it reached the threshold or the
    selection, the threshold would not be validation's and the kept model not the best on
    validation; its own AUC shows the flip."""
    report = final_outcome.report
    site = report["site"]
    assert site["images"] == 40 and site["counts"] == {"NORMAL": 20, "PNEUMONIA": 20}
    assert site["used_for_choices"] is False
    assert site["at_validation_threshold"]["threshold"] == report["test"]["threshold"]
    assert site["at_validation_threshold"]["metrics"]["auc"]["value"] < 0.5
    # the operating threshold is validation's, recomputed from the saved predictions
    with (final_outcome.folder / "val_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["probability"]) for r in rows])
    positives = np.sort(p[y == 1])[::-1]
    target = report["thresholds"]["target_sensitivity"]
    assert report["test"]["threshold"] == positives[math.ceil(target * len(positives)) - 1]
    # the kept model is the best retraining on validation
    runs = report["final"]["runs"]
    best = max(runs, key=lambda r: r["validation_objective"])
    assert report["final"]["chosen"] == {"trial_id": best["trial_id"], "seed": best["seed"]}
    own = site["site_threshold"]
    assert own["specificity_low"] <= own["specificity"] <= own["specificity_high"]
    assert {r["family"] for r in site["families"]} <= {
        "IM",
        "NORMAL2-IM",
        "bacteria",
        "virus",
        "other",
    }
    card = final_outcome.report["model_card"]["site_check"]
    assert card["images"] == 40 and card["used_for_choices"] is False
    assert any("site check (40 images)" in line for line in final_outcome.summary_lines())


@pytest.mark.slow
def test_select_on_site_is_opt_in_and_reported_as_site_selected(
    searched_run, flipped_site, tmp_path
):
    """Opted in, the site ranks the candidates: the selection, the site section, the card
    and the report all say the model is site-selected (the threshold stays validation's)."""
    import shutil

    from results.final.options import FinalOptions
    from search.final_stage import run_final

    run_dir = tmp_path / "run"
    shutil.copytree(searched_run, run_dir, ignore=shutil.ignore_patterns("final*"))
    lines: list[str] = []
    outcome = run_final(
        run_dir,
        FinalOptions(
            top=2,
            epochs=1,
            n_boot=50,
            gallery=0,
            robustness=False,
            shortcut_audit=False,
            site=str(flipped_site),
            select_on_site=True,
        ),
        log=lines.append,
    )
    report = outcome.report
    assert report["selection"]["rule"] == "site" and report["selection"]["site_selected"]
    assert all("site_rw_auc" in t for t in report["selection"]["tied"])
    assert report["site"]["used_for_choices"] is True
    assert report["model_card"]["selection"] == {"rule": "site", "site_selected": True}
    assert report["model_card"]["site_check"]["used_for_choices"] is True
    html = (outcome.folder / "report.html").read_text()
    assert "Site-selected" in html and "site-selected" in html
    assert any("--select-on-site" in line for line in lines)
