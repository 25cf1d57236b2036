"""The search CLI: one-line errors before anything launches, and the listing commands."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from tests.search.conftest import experiment_dict, write_experiment


def cli(*args: str, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pneumo-search: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"searchh": {}}, "searchh: unknown key; valid keys here: address, augment"),
        ({"search": {"sampler": "grid"}}, "search.sampler: got str 'grid'; valid values"),
        ({"space": {"training.learning_rate": {"float": [0.1, 0.01]}}},
         "space.training.learning_rate: impossible range [0.1, 0.01]"),
        ({"space": "nonexistent"}, "space: unknown space 'nonexistent'; valid: cnn"),
        ({"space": {"training.batch_sz": {"choice": [8]}}},
         "space (training.batch_sz): unknown key; valid keys here: batch_size"),
        ({"resources": {"cpu": 0}}, "resources.cpu: must be > 0"),
        ({"data": {"root": "/no/such/folder"}}, "data folder not found: /no/such/folder"),
    ],
)  # fmt: skip
def test_bad_experiments_fail_in_one_line_before_launch(mini_root, tmp_path, change, fragment):
    data = experiment_dict(mini_root, tmp_path / "runs" / "bad")
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "space":
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    proc = cli("run", str(write_experiment(tmp_path / "bad.yaml", data)))
    line = one_line_error(proc)
    assert fragment in line
    assert "runs in" not in proc.stdout  # no word of a run folder that is never made
    assert not (tmp_path / "runs" / "bad" / "tuner.pkl").exists()


def test_yaml_python_tag_is_refused(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("name: x\nspace: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in one_line_error(cli("run", str(bad)))


def test_run_refuses_a_folder_holding_an_earlier_study(mini_root, tmp_path):
    """A driver killed before Tune's first save leaves only optuna.db: run keeps it."""
    run_dir = tmp_path / "runs" / "early"
    run_dir.mkdir(parents=True)
    (run_dir / "optuna.db").write_bytes(b"an earlier study")
    experiment = write_experiment(tmp_path / "e.yaml", experiment_dict(mini_root, run_dir))
    line = one_line_error(cli("run", str(experiment)))
    assert f"{run_dir} holds the Optuna study (optuna.db)" in line and "--name NEW" in line
    assert (run_dir / "optuna.db").read_bytes() == b"an earlier study"  # nothing lost
    assert sorted(p.name for p in run_dir.iterdir()) == ["optuna.db"]


def test_resume_of_a_folder_without_a_search(tmp_path):
    assert "no resumable search here" in one_line_error(cli("resume", str(tmp_path)))


def test_listing_commands():
    spaces = cli("spaces")
    assert spaces.returncode == 0
    assert {line.split()[0] for line in spaces.stdout.splitlines()} >= {
        "cnn", "transfer", "combined", "seeds", "quickstart"
    }  # fmt: skip
    models = cli("models").stdout.split()
    assert "mobilenet" in models and "cnn" in models
    assert "rw_auc" in cli("metrics").stdout


def test_shipped_experiments_are_valid(monkeypatch):
    from search.experiment_space import prepare_experiment

    monkeypatch.chdir(REPO)  # their weights folder is relative to the repository
    for name in ("quickstart.yaml", "kermany.yaml"):
        config, space = prepare_experiment(REPO / "search" / name, samples=40)
        assert yaml.safe_load((REPO / "search" / name).read_text())["name"] == config.name
        assert "model.params.alpha@mobilenet" in space.names() or any(
            "mobilenet.imagenet" in n for n in space.names()
        )  # the shared MobileNet weights are found
    recipe = prepare_experiment(REPO / "search" / "kermany.yaml", samples=1)[0].final
    assert (recipe.ensemble, recipe.target_sensitivity, recipe.image_size) == (3, 0.95, 160)
    assert recipe.crop_scale == 0.25  # the site lever (bench/site_levers.py)


def test_final_takes_the_experiment_final_section_and_each_flag_replaces_its_key(
    mini_root, tmp_path
):
    from pneumo_errors import ConfigError
    from search.cli import FINAL_FLAGS, build_parser, final_flags
    from search.final_stage import final_options

    data = experiment_dict(mini_root, tmp_path / "runs" / "x")
    data["final"] = {"ensemble": 3, "image_size": 160}
    write_experiment(tmp_path / "experiment.yaml", data)
    options = final_options(tmp_path)
    assert (options.ensemble, options.image_size, options.target_sensitivity) == (3, 160, 0.95)
    # a flag given replaces its key; one not given (None) leaves the section's value
    options = final_options(tmp_path, {"ensemble": 0, "image_size": None, "tta": True})
    assert (options.ensemble, options.image_size, options.tta) == (0, 160, True)
    with pytest.raises(ConfigError, match="--image-size: must be between 16 and 1024"):
        final_options(tmp_path, {"image_size": 8})
    # a switch the section turns on can be turned off from the command line, and back on
    data["final"] = {"ensemble": 3, "tta": True, "robustness": False}
    write_experiment(tmp_path / "experiment.yaml", data)
    args = build_parser().parse_args(["final", str(tmp_path), "--no-tta", "--robustness"])
    options = final_options(tmp_path, final_flags(args))
    assert (options.tta, options.robustness, options.ensemble) == (False, True, 3)
    args = build_parser().parse_args(["final", str(tmp_path)])
    assert all(getattr(args, name) is None for name in FINAL_FLAGS)  # nothing given
    # a bad section names the file and the key, from the command line too
    data["final"] = {"ensemble": 1}
    write_experiment(tmp_path / "experiment.yaml", data)
    line = one_line_error(cli("final", str(tmp_path), "--seeds", "2"))
    assert "experiment.yaml" in line and "final.ensemble: must be 0 or >= 2" in line, line
    data["final"] = {"ensemble": 3}
    write_experiment(tmp_path / "experiment.yaml", data)
    line = one_line_error(cli("final", str(tmp_path), "--ensemble", "1"))
    assert "--ensemble: must be 0 or >= 2" in line, line
    # selecting on the site is opt-in and needs the site sample named
    line = one_line_error(cli("final", str(tmp_path), "--select-on-site"))
    assert "--select-on-site: needs a site sample" in line, line
    args = build_parser().parse_args(["final", str(tmp_path), "--site", "S", "--select-on-site"])
    assert final_options(tmp_path, final_flags(args)).select_on_site
    # the finalists' crop scale: a flag and a key, applied to the retrained configuration
    from results.final.candidates import retrain_config
    from search.config import load_experiment

    args = build_parser().parse_args(["final", str(tmp_path), "--crop-scale", "0.25"])
    options = final_options(tmp_path, final_flags(args))
    record = load_experiment(tmp_path / "experiment.yaml").record()
    assert retrain_config(record, {}, 0, options).augment.crop_scale == 0.25
    assert retrain_config(record, {}, 0, final_options(tmp_path)).augment.crop_scale == 1.0
    line = one_line_error(cli("final", str(tmp_path), "--crop-scale", "0.01"))
    assert "--crop-scale: must be in [0.05, 1]" in line, line
