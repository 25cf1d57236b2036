"""The shortcut audit: probes by region, and the model with its border bands masked."""

from __future__ import annotations

import numpy as np
import pytest

from results.final.shortcut import REGIONS, masked_bands, probe_regions


def test_a_probe_finds_signal_where_it_was_planted_and_not_elsewhere():
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 2, n)
    x = rng.normal(0.5, 0.1, (n, 64, 64)).astype(np.float32)
    x[:, :8, :] += 0.2 * y[:, None, None]  # class signal in the top band only
    rows = {r["region"]: r for r in probe_regions((x[:100], y[:100]), {"held": (x[100:], y[100:])})}
    assert set(rows) == set(REGIONS)
    assert rows["top_8_rows"]["held_auc"] > 0.95
    assert rows["centre_32x32"]["held_auc"] < 0.75
    assert rows["bottom_8_rows"]["held_auc"] < 0.75


def test_masked_bands_blanks_an_eighth_of_each_border_only():
    images = np.full((2, 64, 64, 1), 200, np.uint8)
    out = masked_bands(images)
    assert images.min() == 200  # the input is left as it was
    assert (out[:, :8] == 0).all() and (out[:, -8:] == 0).all()
    assert (out[:, :, :8] == 0).all() and (out[:, :, -8:] == 0).all()
    assert (out[:, 8:56, 8:56] == 200).all()


@pytest.mark.slow
def test_the_final_report_has_the_shortcut_audit(final_outcome):
    audit = final_outcome.report["shortcut_audit"]
    assert [p["region"] for p in audit["probes"]] == list(REGIONS)
    for probe in audit["probes"]:
        assert 0.0 <= probe["validation_auc"] <= 1.0
        assert 0.0 <= probe["site_auc"] <= 1.0  # the fixture has a site sample
    masking = audit["masking"]
    assert 0.0 <= masking["decisions_flipped"] <= 1.0 and masking["mean_abs_change"] >= 0.0
    assert masking["auc_before"] == pytest.approx(
        final_outcome.report["test"]["metrics"]["auc"]["value"], abs=1e-9
    )
