"""Site calibration (``pneumo-search calibrate``): a calibrated copy fitted on a site sample.

The exported model here is a real Keras model whose probability follows the image's mean
grey level (``tests/tiny_export.py``), exported by the real export path. Its
card's threshold, 0.5, is where "training's" positives sat; the site's positives are darker
and score lower, so that threshold misses them at the site until calibration moves it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pneumo_errors import DataError, PneumoError
from tests.results.conftest import cli
from tests.tiny_export import grey_export

pytestmark = pytest.mark.slow

SERVE_BYTES = """
import json, sys
import tensorflow as tf
served = tf.saved_model.load(sys.argv[2] + "/saved_model")
files = [open(p, "rb").read() for p in json.loads(sys.argv[1])]
out = served.signatures["serve_bytes"](image_bytes=tf.constant(files))["probability"]
print(json.dumps(out.numpy()[:, 0].tolist()))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return grey_export(tmp_path_factory.mktemp("export") / "model")


def write_site(root, normals, positives):
    for name, greys in (("NORMAL", normals), ("PNEUMONIA", positives)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, grey in enumerate(greys):
            Image.fromarray(np.full((40, 40), grey, np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # normals grey 20-100 (p < 0.01), positives 104-150 (p 0.04-0.4): below 0.5, all of them
    return write_site(
        tmp_path_factory.mktemp("site"), list(range(20, 101, 2)), list(range(104, 151, 2))
    )


def tree_digest(folder):
    from results.serving.export import tree_sha256

    return tree_sha256(folder)


def test_calibration_moves_the_threshold_to_the_sites_target_and_records_it(
    exported, site, tmp_path
):
    from results.serving.calibrate import calibrate_export, positives_needed
    from results.serving.export import read_card
    from results.serving.predict import predict_files

    before = tree_digest(exported)
    lines: list[str] = []
    outcome = calibrate_export(
        exported, site, target_sensitivity=0.95, out=tmp_path / "copy", n_boot=100,
        log=lines.append,
    )  # fmt: skip
    block = outcome.calibration
    assert block["before"]["sensitivity"] == 0.0  # the validation threshold misses them all
    assert block["after"]["sensitivity"] >= 0.95
    assert block["after"]["specificity"] == 1.0  # the site's classes are separable
    assert block["after"]["ece"] < block["before"]["ece"]
    assert tree_digest(exported) == before  # the original export is never modified
    # too few positives for +/- 0.03 at 0.95: the warning says how many it would take
    assert any(f"takes about {positives_needed(0.95)}" in w for w in outcome.warnings)
    assert any(line.startswith("warning: the site sample has 24 positives") for line in lines)

    card = read_card(outcome.folder)
    sample = card["site_calibration"]["site_sample"]
    assert sample["images"] == 65 and sample["counts"] == {"NORMAL": 41, "PNEUMONIA": 24}
    assert len(sample["sha256_of_sorted_files_and_labels"]) == 64
    points = card["site_calibration"]["operating_points"]
    assert points["validation"]["threshold"] == 0.5
    assert card["threshold"]["value"] == points["site"]["threshold"]
    assert card["threshold"]["validation"]["value"] == 0.5 and card["site_calibration"]["date"]
    low, high = points["site"]["threshold_interval"]
    assert low <= points["site"]["threshold"] <= high

    files = sorted(str(p) for p in site.rglob("*.png"))
    rows = predict_files(outcome.folder, files)
    threshold = card["threshold"]["value"]
    assert all(r["threshold"] == threshold for r in rows)  # predict applies the site's
    assert [r["label"] for r in rows] == [
        "PNEUMONIA" if r["prob_PNEUMONIA"] >= threshold else "NORMAL" for r in rows
    ]
    caught = sum(r["label"] == "PNEUMONIA" for r, f in zip(rows, files) if "/PNEUMONIA/" in f)
    assert caught >= 0.95 * 24
    original = predict_files(exported, files)
    assert all(r["label"] == "NORMAL" for r in original)  # the original still misses them
    probs = np.array([r["prob_PNEUMONIA"] for r in rows], float)
    proc = subprocess.run(
        [sys.executable, "-c", SERVE_BYTES, json.dumps(files), str(outcome.folder)],
        capture_output=True, text=True, timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert np.abs(served - probs).max() <= 1e-3  # serve_bytes gives the calibrated probability


def test_cross_fitting_scores_halves_it_was_not_fitted_on(exported, site, tmp_path):
    from results.serving.calibrate import cross_fitted, site_predictions

    sample = site_predictions(exported, site)
    result = cross_fitted(sample.labels, sample.probs, 0.95, seed=0, repeats=3)
    assert result["halves"] == 6
    for method in ("platt", "isotonic"):
        assert 0.0 <= result[method]["specificity"]["low"] <= 1.0
        assert result[method]["sensitivity"]["median"] >= 0.8


def test_a_one_class_or_unreadable_sample_is_refused(exported, tmp_path):
    from results.serving.calibrate import calibrate_export

    one_class = write_site(tmp_path / "one", [], [120, 130, 140])
    with pytest.raises(DataError, match="every readable image is PNEUMONIA"):
        calibrate_export(exported, one_class, out=tmp_path / "a", log=lambda _: None)
    broken = tmp_path / "broken"
    for name in ("NORMAL", "PNEUMONIA"):
        (broken / name).mkdir(parents=True)
        (broken / name / "x.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="no readable image"):
        calibrate_export(exported, broken, out=tmp_path / "b", log=lambda _: None)
    only_normal = write_site(tmp_path / "normal", [30, 40], [])
    for path in (only_normal / "PNEUMONIA").iterdir():
        path.unlink()
    (only_normal / "PNEUMONIA").rmdir()
    with pytest.raises(DataError, match="PNEUMONIA: missing"):
        calibrate_export(exported, only_normal, out=tmp_path / "c")
    with pytest.raises(PneumoError, match="must differ from the export"):
        calibrate_export(exported, tmp_path / "one", out=exported)


def test_the_cli_writes_the_copy_and_its_report(exported, site, tmp_path):
    out = tmp_path / "cli-copy"
    proc = cli("calibrate", str(exported), str(site), "--out", str(out), "--report")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "calibrated copy:" in proc.stdout and "warning: the site sample has" in proc.stdout
    page = (out / "calibration_report.html").read_text()
    assert "Site calibration" in page and "PPV and NPV at the site" in page
    assert page.count("data:image/png;base64") == 2  # ROC with both points, reliability
    again = cli("calibrate", str(exported), str(site), "--out", str(out))
    assert again.returncode != 0 and "exists and is not empty" in again.stderr
    assert "Traceback" not in again.stderr


def test_explain_on_the_calibrated_copy_gives_its_probability_and_a_map(exported, site, tmp_path):
    from results.serving.calibrate import calibrate_export
    from results.serving.predict import explain_image, predict_files

    copy = tmp_path / "copy"
    calibrate_export(exported, site, out=copy, n_boot=50, log=lambda _: None)
    image = sorted((site / "PNEUMONIA").iterdir())[0]
    row = explain_image(copy, image, tmp_path / "map.png")
    (predicted,) = predict_files(copy, [image])
    assert abs(row["prob_PNEUMONIA"] - predicted["prob_PNEUMONIA"]) <= 1e-6
    assert (tmp_path / "map.png").stat().st_size > 1000
