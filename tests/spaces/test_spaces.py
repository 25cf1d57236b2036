from __future__ import annotations

import importlib.util

import optuna
import pytest

from pneumo_core.models.weights import WeightsConfig
from pneumo_errors import ConfigError
from search.config import ExperimentConfig
from search.experiment_space import space_context, validate_space
from search.samplers import SAMPLERS, make_sampler
from spaces import SearchSpace, build_space, list_spaces
from tests.conftest import WEIGHTS

optuna.logging.set_verbosity(optuna.logging.WARNING)
WEIGHTS_HERE = WeightsConfig(dirs=(str(WEIGHTS),))
CONTEXT = space_context(WEIGHTS_HERE, 128)

CONDITIONAL = {
    "training.learning_rate": {"float": [1.0e-4, 1.0e-2], "log": True},
    "model.name": {
        "choice": {
            "cnn": {"model.params.num_blocks": {"int": [2, 4], "step": 2}},
            "mobilenet": {
                "model.params.alpha": {"choice": [0.25]},
                "model.params.dense_units": {"choice": [[], [64, 32]]},
            },
        }
    },
    "augment.horizontal_flip": False,
}


def sample(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        constants = space.define_by_run(trial)
        out.append(space.resolve({**trial.params, **constants}))
        study.tell(trial, 0.5)
    return out


def test_conditional_space_samples_only_the_branch_taken():
    space = SearchSpace.from_dict(CONDITIONAL)
    seen = set()
    for values in sample(space, 30):
        seen.add(values["model.name"])
        assert values["augment.horizontal_flip"] is False
        assert 1e-4 <= values["training.learning_rate"] <= 1e-2
        if values["model.name"] == "cnn":
            assert values["model.params.num_blocks"] in (2, 4)
            assert "model.params.alpha" not in values
        else:
            assert values["model.params.alpha"] == 0.25
            assert values["model.params.dense_units"] in ([], [64, 32])
            assert "model.params.num_blocks" not in values
    assert seen == {"cnn", "mobilenet"}
    assert "model.params.alpha@mobilenet" in space.names()


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"training.lr": {"float": [2, 1]}}, "space.training.lr", "impossible range [2, 1]"),
        (
            {"training.lr": {"float": [0, 1], "log": True}},
            "space.training.lr",
            "log range needs low > 0",
        ),
        ({"training.bs": {"int": [1.5, 4]}}, "space.training.bs", "int bounds must be integers"),
        ({"training.bs": {"int": [1, 4], "step": 0}}, "space.training.bs.step", "integer >= 1"),
        ({"training.bs": {"choice": []}}, "space.training.bs", "non-empty list"),
        ({"training.bs": {"choice": [1], "float": [0, 1]}}, "space.training.bs", "exactly one of"),
        ({"training.bs": {"float": [0, 1], "lg": True}}, "space.training.bs.lg", "unknown key"),
        ({"optimizer.lr": {"float": [0, 1]}}, "space.optimizer.lr", "not a configuration key"),
        ({"data.root": "/x"}, "space.data.root", "can be searched"),
        ({"model.name": {"choice": {"a.b": {}}}}, "space.model.name.a.b", "option names"),
    ],
)
def test_bad_spaces_name_the_key(raw, key, fragment):
    with pytest.raises(ConfigError) as info:
        SearchSpace.from_dict(raw)
    assert info.value.key == key
    assert fragment in info.value.message


def test_unknown_space_name_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown space 'cnnn'; valid: cnn, transfer, combined"):
        build_space("cnnn", CONTEXT)


@pytest.mark.parametrize("name", list(list_spaces()))
def test_every_shipped_space_builds_valid_trial_configs(name):
    space = build_space(name, CONTEXT)
    experiment = ExperimentConfig(name="t", space=name, weights=WEIGHTS_HERE)
    validate_space(experiment, space, samples=40)
    values = sample(space, 20, seed=1)
    assert all("model.name" in v for v in values)


def test_transfer_offers_imagenet_only_where_weights_are(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    offline = build_space("transfer", space_context(WeightsConfig(dirs=(str(tmp_path),)), 128))
    names = offline.names()
    assert not any("imagenet" in n for n in names)
    assert "model.params.alpha@mobilenet.none" in names
    assert not any("resnet50" in n for n in names)  # heavy and no weights: left out
    with_weights = build_space("transfer", CONTEXT)
    assert "model.params.alpha@mobilenet.imagenet" in with_weights.names()


def test_seeds_space_is_exactly_the_seed_presets():
    values = sample(build_space("seeds", CONTEXT), 10)
    assert {v["model.params.preset"] for v in values} == {"seed_3conv", "seed_5conv"}
    assert all(v["training.learning_rate"] == 1.0e-3 for v in values)


def test_bad_value_in_space_is_caught_before_launch():
    experiment = ExperimentConfig(name="t", space={"training.batch_size": {"choice": [0, 32]}})
    space = build_space(experiment.space, CONTEXT)
    with pytest.raises(ConfigError, match=r"space \(training.batch_size\): must be between 1"):
        validate_space(experiment, space)


HAS_TORCH = importlib.util.find_spec("torch") is not None
RUNNABLE = [s for s in SAMPLERS if s != "gp" or HAS_TORCH]


@pytest.mark.parametrize("sampler", RUNNABLE)
def test_every_sampler_drives_the_conditional_space(sampler):
    space = SearchSpace.from_dict(CONDITIONAL)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed=3))
    for i in range(6):
        trial = study.ask()
        constants = space.define_by_run(trial)
        values = space.resolve({**trial.params, **constants})
        study.tell(trial, float(values["training.learning_rate"]) + i * 1e-3)
    assert len(study.trials) == 6


def test_gp_sampler_without_torch_is_a_clear_config_error():
    if HAS_TORCH:
        assert make_sampler("gp", seed=0) is not None
        return
    with pytest.raises(ConfigError, match=r"gp needs PyTorch.*pneumo-search\[gp\]"):
        make_sampler("gp", seed=0)


def test_the_kermany_space_offers_every_shared_imagenet_backbone():
    """The recipe's space offers each MobileNet whose weight file is in ../shared/weights
    (issue 36: v1 0.25 and 0.75, v2 0.35, 0.5 and 1.0), and no alpha without a file."""
    from search.config import load_experiment
    from search.experiment_space import space_context
    from spaces.builtin import transfer_options
    from tests.conftest import REPO

    experiment = load_experiment(REPO / "search" / "kermany.yaml")
    options = transfer_options(space_context(experiment.weights, experiment.data.image_size))
    alphas = {
        name: options[name]["model.params.weights"]["choice"]["imagenet"]["model.params.alpha"]
        for name in ("mobilenet", "mobilenet_v2")
    }
    assert alphas == {
        "mobilenet": {"choice": [0.25, 0.75]},
        "mobilenet_v2": {"choice": [0.35, 0.5, 1.0]},
    }
