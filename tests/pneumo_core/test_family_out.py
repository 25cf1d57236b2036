"""Family-out training on real chest X-rays: lockstep folds, combined scores, resume."""

from __future__ import annotations

import pytest

from pneumo_core.data import DataConfig, prepare_data
from pneumo_core.data.families import acquisition_family
from pneumo_core.train.config import ModelConfig, ObjectiveConfig, TrainConfig, TrainingConfig
from pneumo_core.train.family_out import (
    family_fold_data,
    family_scores,
    load_family_resume,
    train_family_folds,
)
from pneumo_errors import ConfigError

pytestmark = pytest.mark.slow

FAMILIES = ["NORMAL2-IM", "IM", "bacteria", "virus"]


@pytest.fixture(scope="module")
def mini32(mini_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache32")
    return prepare_data(DataConfig(root=str(mini_root), image_size=32, cache_dir=str(cache)))


def family_config(reduce: str = "worst", epochs: int = 2) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig("cnn", {"num_blocks": 2, "filters": 8, "dense_units": [16]}),
        training=TrainingConfig(batch_size=64, epochs=epochs, early_stopping_patience=0),
        objective=ObjectiveConfig(family_out=reduce),
        seed=3,
    )


def test_each_fold_trains_without_its_family_and_is_scored_on_it(mini32):
    folds = family_fold_data(mini32)
    assert [family for family, _ in folds] == FAMILIES
    for family, data in folds:
        train = {acquisition_family(mini32.relpaths[i]) for i in data.splits["train"]}
        assert family not in train
        patients = {mini32.patients[i] for i in data.splits["train"]}
        assert not patients & {mini32.patients[i] for i in data.splits["val"]}


def test_the_objective_is_the_worst_or_mean_over_held_out_families():
    summaries = {
        "IM": {"best_metrics": {"rw_auc": 0.9, "auc": 0.95}},
        "virus": {"best_metrics": {"rw_auc": 0.7, "auc": 0.85}},
    }
    worst = family_scores(summaries, "rw_auc", "worst")
    assert worst["family_worst_rw_auc"] == pytest.approx(0.7)
    assert worst["family_IM_rw_auc"] == pytest.approx(0.9)
    assert worst["auc"] == pytest.approx(0.9)  # other metrics: the mean over folds
    assert family_scores(summaries, "rw_auc", "mean")["family_mean_rw_auc"] == pytest.approx(0.8)
    assert ObjectiveConfig(family_out="mean").key == "family_mean_rw_auc"
    assert ObjectiveConfig(family_out="mean").model_key == "rw_auc"
    with pytest.raises(ConfigError, match="family_out"):
        ObjectiveConfig(family_out="worst", robustness="mean")


def test_lockstep_reports_every_epoch_and_resumes_where_it_stopped(mini32, tmp_path):
    config = family_config("worst", epochs=2)
    seen = []

    class Interrupt(Exception):
        pass

    def stop_after_first(state):
        seen.append(state.row)
        state.save(tmp_path / "checkpoint")
        raise Interrupt

    with pytest.raises(Interrupt):
        train_family_folds(config, mini32, on_epoch=stop_after_first)
    assert len(seen) == 1
    row = seen[0]
    per_family = [row[f"val_family_{f}_rw_auc"] for f in FAMILIES]
    assert row["val_family_worst_rw_auc"] == pytest.approx(min(per_family))

    resume, problems = load_family_resume(tmp_path / "checkpoint")
    assert resume is not None and not problems
    epochs = []
    result = train_family_folds(
        config, mini32, on_epoch=lambda s: epochs.append(s.epoch), resume=resume
    )
    assert epochs == [2]  # epoch 1 is not trained again
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert set(result.results) == set(FAMILIES)
    for fold in result.results.values():
        assert fold.epochs_run == 2 and [r["epoch"] for r in fold.history] == [1, 2]
    assert result.best_value == max(r["val_family_worst_rw_auc"] for r in result.history)
    assert 0.0 < result.best_value <= 1.0 and not result.diverged


def test_a_dataset_whose_classes_have_one_family_each_is_refused_by_name(tmp_path):
    from pneumo_errors import TrainingError
    from tests.conftest import make_dataset

    root = make_dataset(tmp_path / "d", patients_per_class=6)  # IM- normals, bacteria only
    data = prepare_data(DataConfig(root=str(root), image_size=32, cache_dir=str(tmp_path / "c")))
    with pytest.raises(TrainingError, match="acquisition families"):
        family_fold_data(data)


def test_a_fold_past_the_epoch_time_limit_stops_every_fold_after_that_epoch(mini32):
    finished = []
    result = train_family_folds(
        family_config("worst", epochs=3),
        mini32,
        on_epoch=lambda s: finished.append(s.finished),
        max_epoch_seconds=1e-3,  # every fold's first epoch crosses it after one batch
    )
    assert finished == [True]  # one lockstep epoch, the last
    assert [r["epoch"] for r in result.history] == [1]
    assert result.history[0]["epoch_time_limit_s"] == pytest.approx(1e-3)
    assert any(r.status == "epoch_time_limit" for r in result.results.values())
