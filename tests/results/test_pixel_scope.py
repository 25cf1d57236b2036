"""Inputs outside the model's scope, from the pixels: the detector ``final`` exports."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from pneumo_core.data.decode import decode_image
from pneumo_errors import PneumoError
from tests.results.conftest import cli

SPEC = {"size": 32, "color_mode": "grayscale", "aspect": "squash"}


def decoded(paths):
    return np.stack([decode_image(p, 32, "grayscale", "squash")[0] for p in paths])


@pytest.fixture(scope="module")
def mini_images(mini_root):
    split = {s: sorted((mini_root / s).glob("*/*")) for s in ("train", "val", "test")}
    return {s: decoded(paths) for s, paths in split.items()}


@pytest.fixture(scope="module")
def detector(mini_images):
    from results.serving.pixel_scope import fit_pixel_scope

    return fit_pixel_scope(mini_images["train"], mini_images["val"])


def test_the_score_is_the_ppca_likelihood_of_scikit_learn_up_to_a_constant(mini_images):
    """Four arrays, not a pickled estimator: the score is -2 x PCA.score_samples + c."""
    from sklearn.decomposition import PCA

    from results.serving.pixel_scope import _standardized, fit_pixel_scope, thumbnails

    fitted = fit_pixel_scope(mini_images["train"], mini_images["val"], components=16)
    train = _standardized(thumbnails(mini_images["train"]))
    pca = PCA(n_components=16, svd_solver="randomized", random_state=0).fit(train)
    test = mini_images["test"][:40]
    difference = -2.0 * pca.score_samples(_standardized(thumbnails(test))) - fitted.scores(test)
    assert np.ptp(difference) < 1e-3 * np.abs(difference).mean()


def test_in_scope_images_pass_and_out_of_scope_ones_are_flagged(detector, mini_images):
    from results.final.scope_check import out_of_scope_images

    flagged = detector.out_of_scope(mini_images["test"])[1]
    assert flagged.mean() <= 0.05  # the threshold is validation's 99th percentile
    kinds = out_of_scope_images(mini_images["test"], SPEC, seed=0)
    assert {"inverted radiograph", "blank frame", "photograph", "CT slice", "MR slice"} <= set(
        kinds
    )
    for kind, images in kinds.items():
        assert detector.out_of_scope(images)[1].mean() >= 0.8, kind
    scores, flags = detector.out_of_scope(kinds["blank frame"])
    assert flags.all() and detector.reason(scores[0]) == "a blank or near-uniform frame"
    assert "unlike the training images" in detector.reason(1e9)


def test_the_detector_round_trips_through_its_file(detector, mini_images, tmp_path):
    from results.serving.pixel_scope import PixelScope

    detector.save(tmp_path)
    again = PixelScope.load(tmp_path)
    test = mini_images["test"][:20]
    assert np.allclose(again.scores(test), detector.scores(test), rtol=1e-5)
    assert again.threshold == detector.threshold and PixelScope.load(tmp_path / "none") is None


@pytest.mark.slow
def test_final_exports_the_detector_and_predict_flags_what_is_out_of_scope(
    final_outcome, mini_root, tmp_path
):
    """The report and card measure it; predict marks an inverted radiograph and a blank
    frame out of scope with the reason, and --strict gives them no probability."""
    report = final_outcome.report
    scope = report["pixel_scope"]
    assert scope["false_alarm"]["test"]["images"] == report["test"]["n"]
    assert "site" in scope["false_alarm"] and scope["detection"]["blank frame"]["rate"] == 1.0
    card = report["model_card"]
    assert card["pixel_scope"]["threshold"] == scope["threshold"]
    assert "pixel_scope.npz" in card["files"]
    html = (final_outcome.folder / "report.html").read_text()
    assert "Inputs outside the model" in html
    folder = tmp_path / "inputs"
    folder.mkdir()
    source = sorted((mini_root / "test" / "NORMAL").iterdir())[0]
    shutil.copy(source, folder / "xray.jpeg")
    grey = np.asarray(Image.open(source).convert("L"))
    Image.fromarray(255 - grey).save(folder / "inverted.png")
    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(folder / "blank.png")
    out = tmp_path / "rows.csv"
    model = str(final_outcome.model_dir)
    proc = cli("predict", model, str(folder), "--csv", str(out), "--strict")
    assert proc.returncode == 0, proc.stderr
    assert "3 file(s) checked, 2 out of scope refused (--strict)" in proc.stderr
    with out.open(newline="") as handle:
        rows = {os.path.basename(r["path"]): r for r in csv.DictReader(handle)}
    assert rows["xray.jpeg"]["in_scope"] == "True" and rows["xray.jpeg"]["label"]
    for name in ("inverted.png", "blank.png"):
        assert rows[name]["status"] == "out_of_scope" and rows[name]["prob_PNEUMONIA"] == ""
    assert rows["blank.png"]["scope_reason"] == "a blank or near-uniform frame"
    assert "unlike the training images" in rows["inverted.png"]["scope_reason"]


def test_a_changed_detector_file_is_refused(final_outcome, tmp_path):
    from results.serving.export import load_pixel_scope, read_card

    copy = tmp_path / "model"
    shutil.copytree(final_outcome.model_dir, copy)
    with (copy / "pixel_scope.npz").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(PneumoError, match=r"pixel_scope\.npz: sha256 .* does not match"):
        load_pixel_scope(copy, read_card(copy))
