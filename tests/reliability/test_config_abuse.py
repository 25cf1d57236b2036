"""Hostile or changed configuration is refused before anything runs (issue 8, case 9)."""

from __future__ import annotations

import json

import pytest
import yaml

from pneumo_core.configuration import from_dict
from results.board.leaderboard import read_csv_rows
from search.config import ExperimentConfig
from search.guard import GUARD_FILE
from search.runner import run_experiment
from tests.search.conftest import experiment_dict, processes_with_marker, write_experiment
from tests.search.test_cli import cli, one_line_error


def test_a_python_yaml_tag_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "tag-ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    line = one_line_error(cli("run", str(path)))
    assert str(path) in line and "python/object/apply" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"training": {"epochs": "three"}},
            "training.epochs: expected an integer, got str 'three'",
        ),
        ({"training": {"epochs": -1}}, "training.epochs"),
        (
            {"search": {"num_samples": 2.5}},
            "search.num_samples: expected an integer, got float 2.5",
        ),
        ({"resources": {"gpu": -0.5}}, "resources.gpu"),
        ({"scheduler": {"reduction_factor": 1}}, "scheduler.reduction_factor"),
    ],
)
def test_bad_values_fail_before_any_launch_naming_the_key(
    mini_root, tmp_path, cli_env, change, fragment
):
    out = tmp_path / "runs" / "bad"
    data = experiment_dict(mini_root, out)
    for section, values in change.items():
        data[section] = {**data[section], **values}
    line = one_line_error(
        cli("run", str(write_experiment(tmp_path / "bad.yaml", data)), env=cli_env)
    )
    assert fragment in line, line
    assert not out.exists()  # no run folder
    assert processes_with_marker(cli_env["PNEUMO_TEST_MARKER"]) == []  # no Ray started


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mini_root):
    out = tmp_path_factory.mktemp("guard") / "runs" / "guarded"
    data = experiment_dict(mini_root, out, num_samples=1, max_concurrent_trials=1)
    data["space"] = {"model.name": "cnn", "model.params.num_blocks": 2,
                     "model.params.filters": {"choice": [4, 8]}}  # fmt: skip
    data["training"]["epochs"] = 1
    run_experiment(from_dict(ExperimentConfig, data))
    assert [r["status"] for r in read_csv_rows(out / "leaderboard.csv")] == ["completed"]
    return out


@pytest.mark.slow
def test_resume_with_a_changed_space_is_refused(finished_run, cli_env):
    path = finished_run / "experiment.yaml"
    original = path.read_text()
    try:
        edited = yaml.safe_load(original)
        edited["space"]["model.params.filters"] = {"choice": [4, 16]}
        path.write_text(yaml.safe_dump(edited))
        line = one_line_error(cli("resume", str(finished_run), env=cli_env))
        assert "space.model.params.filters.choice: [4, 8] -> [4, 16]" in line, line
        assert "changed since this search started" in line
    finally:
        path.write_text(original)
    # unchanged: resume is accepted (the search is already complete, nothing more runs)
    resumed = cli("resume", str(finished_run), env=cli_env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(read_csv_rows(finished_run / "leaderboard.csv")) == 1


@pytest.mark.slow
def test_resume_with_changed_training_code_is_refused(finished_run, cli_env):
    guard_path = finished_run / GUARD_FILE
    original = guard_path.read_text()
    try:
        guard = json.loads(original)
        guard["trainable_sha256"] = "0" * 64  # as if the run had started with other code
        guard_path.write_text(json.dumps(guard))
        line = one_line_error(cli("resume", str(finished_run), env=cli_env))
        assert "the training code" in line and "changed since this search started" in line
    finally:
        guard_path.write_text(original)


@pytest.mark.slow
def test_resume_accepts_keys_a_later_version_added_at_their_default(finished_run, cli_env):
    """A run started by a version without ``search.constant_liar`` (say) resumes, unless the
    key now holds something other than its default."""
    guard_path = finished_run / GUARD_FILE
    original = guard_path.read_text()
    try:
        guard = json.loads(original)
        del guard["experiment"]["search"]["constant_liar"]
        del guard["experiment"]["training"]["ema"]
        guard_path.write_text(json.dumps(guard))
        resumed = cli("resume", str(finished_run), env=cli_env, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        path = finished_run / "experiment.yaml"
        experiment = path.read_text()
        try:
            edited = yaml.safe_load(experiment)
            edited["training"]["ema"] = 0.99
            path.write_text(yaml.safe_dump(edited))
            line = one_line_error(cli("resume", str(finished_run), env=cli_env))
            assert "training.ema: None -> 0.99" in line, line
        finally:
            path.write_text(experiment)
    finally:
        guard_path.write_text(original)


def test_resume_may_change_how_the_final_runs_but_not_what_was_searched(mini_root, tmp_path):
    import dataclasses

    from pneumo_errors import ConfigError
    from results.final.options import FinalOptions
    from search.guard import check_guard, write_guard

    config = from_dict(ExperimentConfig, experiment_dict(mini_root, tmp_path / "runs" / "x"))
    write_guard(tmp_path, config)
    check_guard(tmp_path, dataclasses.replace(config, final=FinalOptions(ensemble=3)))
    training = dataclasses.replace(config.training, epochs=config.training.epochs + 1)
    with pytest.raises(ConfigError, match="training.epochs"):
        check_guard(tmp_path, dataclasses.replace(config, training=training))
