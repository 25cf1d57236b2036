"""Family-out folds and temperature scaling (issue 16's groundwork)."""

from __future__ import annotations

import numpy as np
import pytest

from pneumo_core.calibration import (
    apply_platt,
    apply_temperature,
    fit_platt,
    fit_temperature,
    log_loss,
)
from pneumo_core.data.families import acquisition_family, family_folds
from pneumo_core.metrics import roc_auc


def kermany_like():
    """File names, patients and labels like Kermany's, with one person in two families."""
    rows = []
    for p in range(6):
        rows += [(f"train/NORMAL/IM-{p:04d}-000{k}.jpeg", f"IM-{p:04d}", 0) for k in (1, 2)]
        rows.append((f"train/NORMAL/NORMAL2-IM-{p:04d}-0001.jpeg", f"NORMAL2-IM-{p:04d}", 0))
        rows.append((f"train/PNEUMONIA/person{p}_bacteria_{p}.jpeg", f"person{p}", 1))
        rows.append((f"train/PNEUMONIA/person{p + 10}_virus_{p}.jpeg", f"person{p + 10}", 1))
    rows.append(("train/PNEUMONIA/person3_virus_99.jpeg", "person3", 1))  # also has bacteria
    pool = list(range(len(rows)))
    for p in range(3):  # the validation split: other patients
        rows.append((f"val/NORMAL/IM-{90 + p:04d}-0001.jpeg", f"IM-{90 + p:04d}", 0))
        rows.append((f"val/PNEUMONIA/person{90 + p}_virus_1.jpeg", f"person{90 + p}", 1))
    reference = list(range(len(pool), len(rows)))
    relpaths, patients, labels = (list(column) for column in zip(*rows))
    return relpaths, patients, labels, pool, reference


def test_families_come_from_file_names():
    assert acquisition_family("train/NORMAL/NORMAL2-IM-1427-0001.jpeg") == "NORMAL2-IM"
    assert acquisition_family("train/NORMAL/IM-0115-0001.jpeg") == "IM"
    assert acquisition_family("test/PNEUMONIA/person1_bacteria_1.jpeg") == "bacteria"
    assert acquisition_family("person1_virus_6.jpeg") == "virus"
    assert acquisition_family("scan.png") == "other"


def test_every_family_is_held_out_once_and_no_patient_is_on_both_sides():
    relpaths, patients, labels, pool, reference = kermany_like()
    folds = family_folds(relpaths, patients, labels, pool, reference)
    assert [f.family for f in folds] == ["NORMAL2-IM", "IM", "bacteria", "virus"]
    for fold in folds:
        train_patients = {patients[i] for i in fold.train}
        val_patients = {patients[i] for i in fold.val}
        assert not train_patients & val_patients, fold.family
        assert fold.family not in {acquisition_family(relpaths[i]) for i in fold.train}
        assert set(np.asarray(labels)[fold.val]) == {0, 1}  # both classes to rank
        held = [i for i in fold.val if i in pool]
        assert {acquisition_family(relpaths[i]) for i in held} == {fold.family}
    bacteria = next(f for f in folds if f.family == "bacteria")
    # person3 has a virus image too: it leaves training with its bacteria image
    assert "train/PNEUMONIA/person3_virus_99.jpeg" not in {relpaths[i] for i in bacteria.train}


def test_temperature_scaling_lowers_validation_log_loss_and_keeps_the_order():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    logits = (labels * 2 - 1) * 1.0 + rng.normal(0, 1.2, 400)
    overconfident = 1 / (1 + np.exp(-4.0 * logits))  # a model four times too sure
    temperature = fit_temperature(labels, overconfident)
    calibrated = apply_temperature(overconfident, temperature)
    assert temperature > 1.5  # an overconfident model is softened
    assert log_loss(labels, calibrated) < log_loss(labels, overconfident) - 0.1
    assert roc_auc(labels, calibrated) == pytest.approx(roc_auc(labels, overconfident))
    np.testing.assert_allclose(apply_temperature(overconfident, 1.0), overconfident, atol=1e-6)
    assert fit_temperature([1, 1, 1], [0.2, 0.9, 0.6]) == 1.0  # one class: nothing to fit


def test_platt_scaling_undoes_the_shift_class_weights_make_and_temperature_cannot():
    rng = np.random.default_rng(1)
    labels = (rng.random(600) < 0.75).astype(int)  # three positives to one negative
    logits = (labels * 2 - 1) * 2.0 + rng.normal(0, 1.0, 600) + np.log(3.0)
    balanced = 1 / (1 + np.exp(-(logits - np.log(3.0))))  # as if trained on balanced classes
    slope, intercept = fit_platt(labels, balanced)
    assert slope > 0 and intercept == pytest.approx(np.log(3.0), abs=0.4)
    platt = apply_platt(balanced, slope, intercept)
    tempered = apply_temperature(balanced, fit_temperature(labels, balanced))
    assert log_loss(labels, platt) < log_loss(labels, tempered) - 0.01
    assert roc_auc(labels, platt) == pytest.approx(roc_auc(labels, balanced))
    assert fit_platt([0, 0], [0.2, 0.4]) == (1.0, 0.0)  # one class: nothing to fit


def test_confident_learning_flags_flipped_labels_first():
    from results.final.label_audit import flag_label_issues

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 300)
    probs = np.clip(truth * 0.8 + 0.1 + rng.normal(0, 0.05, 300), 0.01, 0.99)
    given = truth.copy()
    flipped = rng.choice(300, 12, replace=False)
    given[flipped] = 1 - given[flipped]
    flagged = flag_label_issues(given, probs)
    found = set(flipped) & set(flagged.tolist())
    assert len(found) >= 10  # most flipped labels are found...
    assert len(found) / len(flagged) >= 0.8  # ...and few correct labels are accused
    ranks = [flagged.tolist().index(i) for i in found]
    assert max(ranks) < len(found) + 2  # ranked first


def test_train_exclude_leaves_listed_images_out_of_training_only(tmp_path):
    from pneumo_core.data import DataConfig, prepare_data
    from pneumo_errors import DataError
    from tests.conftest import make_dataset

    root = make_dataset(tmp_path / "d", patients_per_class=6)
    base = prepare_data(DataConfig(root=str(root), image_size=32, cache_dir=str(tmp_path / "c")))
    train = [base.relpaths[i] for i in base.splits["train"][:3]]
    val = base.relpaths[base.splits["val"][0]]
    listing = tmp_path / "issues.csv"
    listing.write_text("rank,path\n" + "".join(f"{k},{p}\n" for k, p in enumerate([*train, val])))
    cache = str(tmp_path / "c")
    config = DataConfig(root=str(root), image_size=32, cache_dir=cache, train_exclude=str(listing))
    data = prepare_data(config)
    assert len(data.splits["train"]) == len(base.splits["train"]) - 3
    assert val in {data.relpaths[i] for i in data.splits["val"]}  # validation keeps it
    assert data.summary["train_excluded"]["images"] == 3
    assert data.fingerprint != base.fingerprint
    with pytest.raises(DataError, match="data.train_exclude"):
        prepare_data(DataConfig(root=str(root), image_size=32, train_exclude=str(tmp_path / "no")))
