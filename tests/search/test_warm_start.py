"""Warm start (issue 18): a new search starts from an earlier run's study.

Real searches (Ray Tune + Optuna + Keras on chest_xray_mini at 32 px): one earlier run,
then a compatible warm start, one whose space differs (refused, naming the keys, before
anything is written), and a warm-started run stopped with Ctrl-C and resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess

import optuna
import pytest

from pneumo_core.configuration import from_dict
from pneumo_errors import ConfigError
from results.board.leaderboard import read_csv_rows
from search.config import ExperimentConfig
from search.experiment_space import experiment_space
from search.runner import run_experiment
from search.warm_start import COPIED_FROM, best_first, load_warm_start, seed_study
from tests.conftest import SMALL_SPACE
from tests.reliability.test_driver_kill import resume_to_the_end, start_driver
from tests.search.conftest import experiment_dict, write_experiment

pytestmark = pytest.mark.slow


def small_experiment(root, out, **search) -> dict:
    """A search in the space of the session's ``searched_run`` (so it can start from it)."""
    data = experiment_dict(root, out, max_concurrent_trials=1, **search)
    data["space"] = dict(SMALL_SPACE)
    data["training"]["epochs"] = 2
    return data


@pytest.fixture
def earlier_run(searched_run):
    """A finished 3-trial search to start from: the session's (tests/conftest.py)."""
    return searched_run


def test_a_compatible_run_seeds_the_study_and_queues_its_best(earlier_run, mini_root, tmp_path):
    warm = load_warm_start(earlier_run)
    assert len(warm.trials) == 3
    config = from_dict(ExperimentConfig, small_experiment(mini_root, tmp_path / "new"))
    space = experiment_space(config)
    study = optuna.create_study(direction="maximize")
    copied, queued = seed_study(
        study, warm, objective="rw_auc", distributions=space.distributions(), top=2
    )
    assert (copied, queued) == (3, 2)
    old = {t.number: t for t in warm.trials}
    done = [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING]
    assert len(done) == 3
    for trial in done:  # the same observations, marked as copied
        source = old[trial.user_attrs["warm_start_number"]]
        assert trial.user_attrs[COPIED_FROM] == str(earlier_run)
        assert trial.params == source.params and trial.value == source.value
        assert trial.intermediate_values == source.intermediate_values
    first = study.ask()  # the queued best configuration comes out first
    space.define_by_run(first)
    assert first.params == best_first(warm.trials, "max")[0].params


def test_a_differing_space_is_refused_naming_the_keys(earlier_run, mini_root, tmp_path):
    out = tmp_path / "refused"
    data = small_experiment(mini_root, out, warm_start=str(earlier_run))
    data["space"]["model.params.filters"] = {"choice": [4, 16]}
    data["space"].pop("training.learning_rate")
    with pytest.raises(ConfigError) as caught:
        run_experiment(from_dict(ExperimentConfig, data))
    message = str(caught.value)
    assert "search.warm_start" in message and str(earlier_run) in message
    assert "model.params.filters: choices [4, 8] there, choices [4, 16] here" in message
    assert "training.learning_rate: not in this space" in message
    assert not out.exists()  # refused before anything was written


def test_another_objective_is_refused(earlier_run, mini_root, tmp_path):
    data = small_experiment(mini_root, tmp_path / "auc", warm_start=str(earlier_run))
    data["objective"] = {"metric": "auc"}
    with pytest.raises(ConfigError, match="followed rw_auc, this search follows auc"):
        run_experiment(from_dict(ExperimentConfig, data))


def test_a_warm_started_run_resumes_with_nothing_copied_twice(
    earlier_run, mini_root, tmp_path, cli_env
):
    out = tmp_path / "runs" / "warm"
    data = small_experiment(
        mini_root, out, num_samples=2, warm_start=str(earlier_run), warm_start_top=1
    )
    experiment = write_experiment(tmp_path / "warm.yaml", data)
    driver = start_driver(
        experiment, cli_env, 1, out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    os.killpg(driver.pid, signal.SIGINT)
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, (stdout[-2000:], stderr[-2000:])
    assert f"warm start from {earlier_run}: 3 observations copied" in stdout
    resume_to_the_end(out, cli_env)
    rows = read_csv_rows(out / "leaderboard.csv")
    assert len(rows) == 2 and len({r["trial_id"] for r in rows}) == 2
    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'optuna.db'}")
    copies = [t for t in study.trials if "warm_start_number" in t.user_attrs]
    assert sorted(t.user_attrs["warm_start_number"] for t in copies) == [0, 1, 2]
    own = [t for t in study.trials if "warm_start_number" not in t.user_attrs]
    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert sum(t.state in ended for t in own) == 2
    best = best_first(load_warm_start(earlier_run).trials, "max")[0]
    assert own[0].params == best.params  # the earlier best ran first
