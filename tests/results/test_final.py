"""The final stage end to end: retrain, threshold on validation, test once, report, export."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil

import numpy as np
import pytest
from sklearn import metrics as skm

from pneumo_core.robustness import list_shifts
from pneumo_errors import PneumoError
from tests.results.conftest import cli

pytestmark = pytest.mark.slow


def read_predictions(path):
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["probability"]) for r in rows])
    return rows, y, p


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def test_report_numbers_equal_those_recomputed_from_the_saved_predictions(final_outcome):
    folder = final_outcome.folder
    report = json.loads((folder / "report.json").read_text())
    rows, y, p = read_predictions(folder / "test_predictions.csv")
    test = report["test"]
    t = test["threshold"]
    assert test["n"] == len(rows) == report["data"]["splits"]["test"]["images"]
    predicted = p >= t
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    tn = int(np.sum(~predicted & (y == 0)))
    assert test["counts"] == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    assert test["confusion_matrix"]["matrix"] == [[tn, fp], [fn, tp]]
    assert [int(r["predicted"]) for r in rows] == predicted.astype(int).tolist()
    m = test["metrics"]
    expected = {
        "accuracy": ((tp + tn), len(y)),
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
    }
    for name, (k, n) in expected.items():
        assert m[name]["value"] == pytest.approx(k / n, abs=1e-12), name
        assert (m[name]["low"], m[name]["high"]) == pytest.approx(wilson(k, n), abs=1e-9), name
        assert m[name]["low"] <= m[name]["value"] <= m[name]["high"]
    auc = skm.roc_auc_score(y, p)
    pauc = skm.roc_auc_score(1 - y, -p, max_fpr=0.1)  # sensitivity >= 0.9
    assert m["auc"]["value"] == pytest.approx(auc, abs=1e-12)
    assert m["rw_auc"]["value"] == pytest.approx(0.5 * auc + 0.5 * pauc, abs=1e-12)
    assert m["f1"]["value"] == pytest.approx(skm.f1_score(y, predicted.astype(int)), abs=1e-12)
    assert m["brier"]["value"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)
    for name in ("auc", "rw_auc", "f1", "pr_auc"):
        assert m[name]["low"] <= m[name]["value"] <= m[name]["high"], name
    bins = test["calibration"]["bins"]
    assert sum(b["count"] for b in bins) == len(y)
    groups = {r["subgroup"] for r in rows if r["label"] == "1"}
    assert set(test["subgroups"]) == groups == {"bacteria", "virus"}
    for name, info in test["subgroups"].items():
        members = [i for i, r in enumerate(rows) if r["subgroup"] == name]
        hits = sum(p[i] >= t for i in members)
        assert info["images"] == len(members)
        assert info["sensitivity"]["value"] == pytest.approx(hits / len(members))


def test_family_results_match_the_saved_predictions_and_every_family_is_held_out(final_outcome):
    from pneumo_core.data.families import acquisition_family

    report = final_outcome.report
    rows, y, p = read_predictions(final_outcome.folder / "test_predictions.csv")
    threshold = report["test"]["threshold"]
    for entry in report["families"]["test"]:
        label = 1 if entry["class"] == "PNEUMONIA" else 0
        mask = np.array([acquisition_family(r["path"]) == entry["family"] for r in rows])
        mask &= y == label
        correct = int(((p[mask] >= threshold) == bool(label)).sum())
        assert entry["images"] == int(mask.sum()) and entry["value"] == correct / mask.sum()
        assert (entry["low"], entry["high"]) == pytest.approx(wilson(correct, int(mask.sum())))
    assert {e["family"] for e in report["families"]["test"]} == {
        "NORMAL2-IM", "IM", "bacteria", "virus"}  # fmt: skip
    held = report["families"]["held_out"]
    assert [f["family"] for f in held["folds"]] == ["NORMAL2-IM", "IM", "bacteria", "virus"]
    assert held["worst_rw_auc"] == min(f["rw_auc"] for f in held["folds"])
    html = (final_outcome.folder / "report.html").read_text()
    assert "<h2>Acquisition families</h2>" in html and "Families held out of training" in html


def test_the_threshold_comes_from_validation_only(final_outcome):
    folder = final_outcome.folder
    report = final_outcome.report
    _, y_val, p_val = read_predictions(folder / "val_predictions.csv")
    target = report["thresholds"]["target_sensitivity"]
    t = report["test"]["threshold"]
    # the highest threshold whose validation sensitivity reaches the target
    positives = np.sort(p_val[y_val == 1])[::-1]
    assert t == pytest.approx(positives[math.ceil(target * len(positives)) - 1], abs=0)
    assert np.mean(p_val[y_val == 1] >= t) >= target
    fpr, tpr, thresholds = skm.roc_curve(y_val, p_val)
    youden = report["thresholds"]["validation"]["youden"]["threshold"]
    assert youden == pytest.approx(min(thresholds[np.argmax(tpr - fpr)], 1.0))
    assert report["thresholds"]["validation"]["0.5"]["threshold"] == 0.5


def test_the_kept_model_is_the_retraining_best_on_validation(final_outcome):
    final = final_outcome.report["final"]
    runs = final["runs"]
    assert len(runs) == 2 and len({r["trial_id"] for r in runs}) == 2
    best = max(runs, key=lambda r: r["validation_objective"])
    assert [r["chosen"] for r in runs].count(True) == 1 and best["chosen"]
    assert final["chosen"] == {"trial_id": best["trial_id"], "seed": best["seed"]}
    assert final["validation_metrics"]["rw_auc"] == pytest.approx(best["validation_objective"])
    history = final["history"]
    assert len(history) == best["epochs_run"] and history[0]["epoch"] == 1


def test_report_sections_are_all_there(final_outcome):
    report = final_outcome.report
    search = report["search"]
    assert search["trials"]["total"] == 3 and len(search["top"]) == 3
    assert search["best"]["trial_id"] == search["top"][0]["trial_id"]
    assert len(search["timeline"]) == 3 and search["wall_time_s"] > 0
    env = report["environment"]
    assert env["versions"]["keras"].startswith("3.") and env["cpus"] >= 1
    assert report["data_fingerprint"] == report["data"]["fingerprint"]
    kinds = {g["kind"] for g in report["gallery"]}
    assert kinds <= {"false negative", "false positive"} and report["gallery"]
    for item in report["gallery"]:
        assert (final_outcome.folder / item["image"]).stat().st_size > 1000
    for name in ("roc", "pr", "calibration", "confusion", "training", "timeline", "robustness"):
        assert (final_outcome.folder / "plots" / f"{name}.png").is_file(), name
    # the robustness suite: the clean row is the test evaluation, then every shift x severity
    robustness = report["robustness"]
    assert robustness["clean"]["auc"] == pytest.approx(report["test"]["metrics"]["auc"]["value"])
    assert robustness["threshold"] == report["test"]["threshold"]
    assert len(robustness["rows"]) == len(list_shifts()) * 3
    assert len({(r["auc"], r["specificity"]) for r in robustness["rows"]}) > 3  # shifts bite
    html = (final_outcome.folder / "report.html").read_text()
    assert "<h2>Robustness</h2>" in html and robustness["summary"]["worst"] in html
    assert 'src="http' not in html and "<script" not in html and "<link" not in html
    # reliability after temperature scaling: every test image in a bin, ECE as tabled
    scaling = report["test"]["calibration"]["temperature_scaling"]
    assert sum(b["count"] for b in scaling["test"]["bins_after"]) == report["test"]["n"]
    assert "after temperature scaling" in html and "after temperature + bias" in html


def test_exported_model_in_a_fresh_process_matches_the_final_evaluation(
    final_outcome, mini_root, tmp_path
):
    rows, _, p = read_predictions(final_outcome.folder / "test_predictions.csv")
    expected = {r["path"]: prob for r, prob in zip(rows, p)}
    out = tmp_path / "predictions.csv"
    env = {**os.environ, "PNEUMO_CACHE_DIR": str(tmp_path / "cache")}
    model = str(final_outcome.model_dir)
    proc = cli("predict", model, str(mini_root / "test"), "--csv", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="") as handle:
        predicted = list(csv.DictReader(handle))
    assert len(predicted) == len(expected) and all(r["status"] == "ok" for r in predicted)
    card = json.loads((final_outcome.model_dir / "model_card.json").read_text())
    for row in predicted:
        relpath = os.path.relpath(row["path"], mini_root)
        assert float(row["prob_PNEUMONIA"]) == pytest.approx(expected[relpath], abs=1e-5)
        assert float(row["prob_NORMAL"]) == pytest.approx(1 - expected[relpath], abs=1e-5)
        wanted = "PNEUMONIA" if expected[relpath] >= card["threshold"]["value"] else "NORMAL"
        assert row["label"] == wanted


def test_the_saved_model_serves_the_same_probabilities(final_outcome, mini_root):
    import tensorflow as tf

    from pneumo_core.data.decode import decode_image

    rows, _, p = read_predictions(final_outcome.folder / "test_predictions.csv")
    card = json.loads((final_outcome.model_dir / "model_card.json").read_text())
    spec = card["input"]
    images = np.stack(
        [
            decode_image(mini_root / r["path"], spec["size"], spec["color_mode"], spec["aspect"])[0]
            for r in rows[:8]
        ]
    ).astype(np.float32)
    served = tf.saved_model.load(str(final_outcome.model_dir / "saved_model"))
    probs = np.asarray(served.serve(images))[:, 0]
    np.testing.assert_allclose(probs, p[:8], atol=1e-5)


def test_model_card_describes_the_model(final_outcome):
    from results.serving.export import sha256_of

    card = json.loads((final_outcome.model_dir / "model_card.json").read_text())
    report = final_outcome.report
    assert card["class_names"] == ["NORMAL", "PNEUMONIA"]
    assert card["input"] | {"preprocessing": ""} == {
        "size": 32, "channels": 1, "color_mode": "grayscale", "aspect": "squash",
        "dtype": "float32", "value_range": [0, 255], "preprocessing": "",
    }  # fmt: skip
    assert card["threshold"]["value"] == report["test"]["threshold"]
    assert card["test_metrics"]["auc"] == report["test"]["metrics"]["auc"]["value"]
    assert card["data_fingerprint"] == report["data_fingerprint"]
    assert card["files"]["model.keras"]["sha256"] == sha256_of(
        final_outcome.model_dir / "model.keras"
    )
    assert card["config"]["model"]["name"] == "cnn"
    # what a clinical reader needs (issue 17)
    assert "clinician" in card["intended_use"] and len(card["out_of_scope"]) >= 3
    assert "Kermany" in card["training_data"]["provenance"]
    assert card["training_data"]["files"]["split"].startswith("patient-grouped")
    test = card["test"]
    assert test["images"] == report["test"]["n"]
    assert test["prevalence"] == pytest.approx(test["positives"] / test["images"])
    assert [r["prevalence"] for r in test["ppv_npv_by_prevalence"]][:2] == [0.02, 0.05]
    auc = test["metrics_with_95_intervals"]["auc"]
    assert auc["low"] <= auc["value"] <= auc["high"]
    assert test["calibration"]["ece"] == report["test"]["calibration"]["ece"]
    assert any("public Kermany test split" in line for line in card["limitations"])
    assert card["robustness"] == report["robustness"]["summary"]
    assert card["normalization"].startswith(("unit:", "tf:", "per_image:"))
    scaling = report["test"]["calibration"]["temperature_scaling"]
    assert scaling["temperature"] > 0 and scaling["fitted_on"] == "validation"
    loss = scaling["validation_log_loss"]
    assert loss["after"] <= loss["before"] + 1e-9  # fitted there: never worse there
    platt = scaling["platt"]  # a temperature and a bias: fitted there, never worse than T
    assert platt["slope"] > 0
    assert platt["validation_log_loss"]["after"] <= loss["after"] + 1e-4


def test_a_changed_model_file_is_refused(final_outcome, tmp_path):
    from results.serving.export import load_exported

    copy = tmp_path / "model"
    shutil.copytree(final_outcome.model_dir, copy)
    with (copy / "model.keras").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(PneumoError, match=r"model\.keras: sha256 .* does not match"):
        load_exported(copy)


def test_predict_gives_a_row_per_file_and_error_rows_for_bad_ones(
    final_outcome, mini_root, tmp_path
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    sources = sorted((mini_root / "test" / "PNEUMONIA").iterdir())[:3]
    for source in sources:
        shutil.copy(source, folder / source.name)
    (folder / "corrupt.jpeg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: skipped, and counted
    missing = tmp_path / "missing.png"
    out = tmp_path / "rows.csv"
    proc = cli(
        "predict", str(final_outcome.model_dir), str(folder), str(missing), "--csv", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 of 6 files could not be read" in proc.stderr
    assert "skipped 1 hidden file(s) or folder(s)" in proc.stderr
    with out.open(newline="") as handle:
        rows = {os.path.basename(r["path"]): r for r in csv.DictReader(handle)}
    assert len(rows) == 6
    for source in sources:
        assert rows[source.name]["status"] == "ok" and rows[source.name]["label"]
    assert rows["corrupt.jpeg"]["status"] == "error" and "corrupt" in rows["corrupt.jpeg"]["error"]
    assert rows["notes.txt"]["error"] == "not an image file Pillow can read"
    assert rows["missing.png"]["error"] == "no such file"
    assert rows["notes.txt"]["prob_PNEUMONIA"] == ""
    nothing = cli("predict", str(final_outcome.model_dir), str(folder / "notes.txt"), str(missing))
    assert nothing.returncode == 2  # not one image read: an error, not a success
    assert "error: none of the 2 files could be read as an image" in nothing.stderr


def test_explain_maps_the_predicted_class_or_the_one_asked_with_a_colour_bar(
    final_outcome, mini_root, tmp_path
):
    from PIL import Image

    from results.serving.predict import predict_files

    image = sorted((mini_root / "test" / "PNEUMONIA").iterdir())[0]
    predicted = predict_files(final_outcome.model_dir, [image])[0]["label"]
    out = tmp_path / "cam.png"
    proc = cli("explain", str(final_outcome.model_dir), str(image), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"predicted {predicted}" in proc.stdout and "threshold 0." in proc.stdout
    assert f"Grad-CAM of {predicted}:" in proc.stdout
    with Image.open(out) as figure:
        assert figure.size == (800, 400)  # the image, the map and its colour bar
        pixels = np.asarray(figure.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 100
    other = "NORMAL" if predicted == "PNEUMONIA" else "PNEUMONIA"
    asked = cli(
        "explain", str(final_outcome.model_dir), str(image), "--out", str(out), "--class", other
    )
    assert asked.returncode == 0, asked.stderr
    assert f"Grad-CAM of {other}:" in asked.stdout
    wrong = cli("explain", str(final_outcome.model_dir), str(image), "--out", str(out),
                "--class", "COVID")  # fmt: skip
    assert wrong.returncode == 2 and "--class 'COVID': not a class" in wrong.stderr


def test_explain_warns_when_the_map_is_flat(tmp_path, mini_root):
    """A model whose output ignores the image gets a flat map, and says so."""
    import keras

    from results.serving.export import export_model

    inputs = keras.Input((32, 32, 1))
    features = keras.layers.Conv2D(2, 3, kernel_initializer="zeros", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    output = keras.layers.Dense(1, activation="sigmoid", bias_initializer="ones")(pooled)
    card = {
        "class_names": ["NORMAL", "PNEUMONIA"],
        "input": {"size": 32, "channels": 1, "color_mode": "grayscale", "aspect": "squash"},
        "threshold": {"value": 0.5},
    }
    export_model(keras.Model(inputs, output), tmp_path / "flat", card)
    image = sorted((mini_root / "test" / "NORMAL").iterdir())[0]
    proc = cli("explain", str(tmp_path / "flat"), str(image), "--out", str(tmp_path / "f.png"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: the Grad-CAM map of PNEUMONIA is flat" in proc.stderr


def test_export_copies_the_model_and_refuses_a_non_empty_target(final_outcome, tmp_path):
    run_dir = final_outcome.folder.parent
    target = tmp_path / "exported"
    proc = cli("export", str(run_dir), "--to", str(target))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in target.iterdir()) == [
        "model.keras",
        "model_card.json",
        "pixel_scope.npz",
        "saved_model",
    ]
    card = json.loads((target / "model_card.json").read_text())
    assert set(card["files"]["saved_model"]["signatures"]) == {"serve", "serve_bytes"}
    again = cli("export", str(run_dir), "--to", str(target))
    assert again.returncode == 2 and "exists and is not empty" in again.stderr


def test_final_without_a_search_is_a_one_line_error(tmp_path):
    proc = cli("final", str(tmp_path))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"pneumo-search: error: {tmp_path}: no search here (no experiment.yaml)"
    )


def test_an_ensemble_is_reported_beside_its_members_and_serves_through_predict(
    searched_run, mini_root, tmp_path
):
    import keras

    from results.final.stage import FinalOptions
    from results.serving.export import load_exported
    from search.final_stage import run_final

    run = tmp_path / "small"
    shutil.copytree(searched_run, run, ignore=shutil.ignore_patterns("final*"))
    options = FinalOptions(
        ensemble=2, tta=True, epochs=1, n_boot=50, gallery=1, robustness=False, select="family"
    )
    outcome = run_final(run, options, log=lambda _: None)
    report = outcome.report
    # chosen among the candidates tied with the best by the worst held-out family
    selection = report["selection"]
    assert selection["rule"] == "family" and selection["tied"]
    kept = next(t for t in selection["tied"] if t["run"] == selection["chosen"])
    worst = max(t["family_worst_rw_auc"] for t in selection["tied"])
    assert kept["family_worst_rw_auc"] == worst
    assert report["families"]["held_out"]["worst_rw_auc"] == pytest.approx(worst)
    assert report["ensemble"]["members"][0] == kept["trial_id"]
    ranked = [key.split("/")[0] for key in selection["ranked"]]  # the rule's order
    assert ranked[0] == kept["trial_id"]
    if len(ranked) >= 2:  # the partner is the rule's next tied candidate
        assert report["ensemble"]["members"] == ranked[:2]
    rows = report["ensemble"]["comparison"]
    assert [r["model"] for r in rows] == [
        "member 1", "member 2", "ensemble of 2", "member 1 + TTA", "ensemble of 2 + TTA"
    ]  # fmt: skip
    assert len(set(report["ensemble"]["members"])) == 2  # two different configurations
    assert rows[-1]["test_auc"] == pytest.approx(report["test"]["metrics"]["auc"]["value"])
    assert len({r["test_auc"] for r in rows}) == 5  # members, mean and views all differ
    assert (
        "<h2>Ensemble and test-time augmentation</h2>"
        in (outcome.folder / "report.html").read_text()
    )
    assert report["gallery"]  # Grad-CAM through the ensemble: its members' mean

    # one servable model: the mean of its members, the same through `predict`
    model, card = load_exported(outcome.model_dir)
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [m.name for m in members] == ["member_1", "member_2"]
    assert [m["trial_id"] for m in card["ensemble"]["members"]] == report["ensemble"]["members"]
    images = np.random.default_rng(0).uniform(0, 255, (4, *model.input_shape[1:]))
    views = [images]
    for axis, pixels in ((1, 1), (1, -1), (2, 1), (2, -1)):  # 4% of 32 px: one pixel
        shifted = np.roll(images, pixels, axis=axis)
        edge = [slice(None)] * 4
        edge[axis] = 0 if pixels > 0 else -1
        shifted[tuple(edge)] = 0  # filled with black, not wrapped around
        views.append(shifted)
    mean = np.mean([m.predict(v, verbose=0) for m in members for v in views], axis=0)
    np.testing.assert_allclose(model.predict(images, verbose=0), mean, atol=1e-5)
    out = tmp_path / "predictions.csv"
    env = {**os.environ, "PNEUMO_CACHE_DIR": str(tmp_path / "cache")}
    proc = cli(
        "predict", str(outcome.model_dir), str(mini_root / "test"), "--csv", str(out), env=env
    )
    assert proc.returncode == 0, proc.stderr
    saved, _, p = read_predictions(outcome.folder / "test_predictions.csv")
    expected = {r["path"]: prob for r, prob in zip(saved, p)}
    with out.open(newline="") as handle:
        predicted = list(csv.DictReader(handle))
    assert len(predicted) == len(expected)
    for row in predicted:
        relpath = os.path.relpath(row["path"], mini_root)
        assert float(row["prob_PNEUMONIA"]) == pytest.approx(expected[relpath], abs=1e-5)


def test_final_retrains_at_another_resolution_when_asked(searched_run):
    from results.board.leaderboard import read_csv_rows
    from results.final.candidates import ranked_candidates, retrain
    from results.final.options import FinalOptions
    from search.config import load_experiment

    record = load_experiment(searched_run / "experiment.yaml").record()
    rows = ranked_candidates(searched_run, read_csv_rows(searched_run / "leaderboard.csv"), 1)
    (run,) = retrain(record, rows, FinalOptions(epochs=1, image_size=40), lambda _: None)
    assert record.base.data.image_size == 32  # the search's resolution
    assert run.config.data.image_size == 40 and run.data.input_shape[:2] == (40, 40)
    assert tuple(run.result.model.input_shape[1:3]) == (40, 40)


def test_final_keeps_the_cost_guard_of_the_search_and_of_its_flag(searched_run, final_outcome):
    from results.final.options import FinalOptions
    from search.final_stage import run_final

    # the search had no limit, so neither had its final (the report says which it used)
    assert final_outcome.report["final"]["options"]["max_epoch_s"] == 0.0
    board = (searched_run / "leaderboard.csv").read_text()
    assert "median_epoch_s" in board.splitlines()[0]
    # every trial's median epoch took longer than a microsecond: nothing fits, nothing runs
    with pytest.raises(PneumoError, match=r"1e-06 s per-epoch limit"):
        run_final(searched_run, FinalOptions(max_epoch_s=1e-6), log=lambda _: None)
    with pytest.raises(PneumoError, match="max_epoch_s"):
        FinalOptions(max_epoch_s=-1)


def test_the_label_audit_lists_flagged_train_images_with_thumbnails(final_outcome):
    audit = final_outcome.report["label_audit"]
    with (final_outcome.folder / "label_issues.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == audit["flagged"] and audit["train_images"] > 100
    assert sum(audit["flagged_by_class"].values()) == audit["flagged"]
    for row in rows:  # a flagged image is one the out-of-fold model disagrees with
        p = float(row["out_of_fold_probability"])
        assert (p < 0.5) if row["label"] == "1" else (p > 0.5), row
    for item in audit["shown"]:
        assert (final_outcome.folder / item["image"]).stat().st_size > 200
    html = (final_outcome.folder / "report.html").read_text()
    assert "<h2>Label-noise audit</h2>" in html


def test_retrain_logs_each_epoch_as_it_ends(searched_run):
    """Progress you can see: a line per epoch before the retrain's summary line."""
    from results.board.leaderboard import read_csv_rows
    from results.final.candidates import ranked_candidates, retrain
    from results.final.options import FinalOptions
    from search.config import load_experiment

    record = load_experiment(searched_run / "experiment.yaml").record()
    rows = ranked_candidates(searched_run, read_csv_rows(searched_run / "leaderboard.csv"), 1)
    lines: list[str] = []
    (run,) = retrain(record, rows, FinalOptions(top=1, epochs=2), lines.append)
    epochs = [line for line in lines if ": epoch " in line]
    assert len(epochs) == run.result.epochs_run >= 1
    assert epochs[0].startswith(f"retrain 1/1: trial {rows[0]['trial_id']} seed ")
    assert ": epoch 1/2, loss " in epochs[0] and "validation rw_auc" in epochs[0]
    assert lines.index(epochs[-1]) < len(lines) - 1  # the summary line comes after them


def test_final_progress_reaches_its_log_file_as_written(searched_run, tmp_path, monkeypatch):
    """``run_final``'s default log flushes each line to stdout and ``final.log`` at once."""
    import search.final_stage as final_stage_module

    run = tmp_path / "run"
    shutil.copytree(searched_run, run, ignore=shutil.ignore_patterns("final"))
    seen_in_file: list[str] = []

    def fake_stage(run_dir, record, options, log):
        log("retrain 1/1: epoch 1/2")
        seen_in_file.append((run_dir / "final.log").read_text())  # before the stage ends
        raise PneumoError("stop here")

    monkeypatch.setattr(final_stage_module, "final_stage", fake_stage)
    with pytest.raises(PneumoError, match="stop here"):
        final_stage_module.run_final(run)
    assert seen_in_file == ["retrain 1/1: epoch 1/2\n"]
