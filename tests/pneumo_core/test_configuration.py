from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from pneumo_core.configuration import from_dict, load_yaml, require
from pneumo_core.train.config import TrainConfig, load_train_config
from pneumo_errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = 8
    mode: Literal["a", "b"] = "a"

    def __post_init__(self) -> None:
        require(self.size > 0, "size", "must be > 0")


@dataclass(frozen=True)
class Outer:
    name: str
    rate: float = 0.1
    flags: tuple[int, ...] = ()
    inner: Inner = field(default_factory=Inner)


def test_builds_nested_dataclass_with_conversions():
    cfg = from_dict(Outer, {"name": "x", "rate": "1e-3", "flags": [1, 2], "inner": {"size": 3}})
    assert cfg == Outer("x", 0.001, (1, 2), Inner(3, "a"))


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"name": "x", "bogus": 1}, "bogus", "unknown key; valid keys here: flags, inner, name"),
        ({}, "name", "required key is missing"),
        ({"name": 3}, "name", "expected a string"),
        ({"name": "x", "rate": "fast"}, "rate", "expected a number"),
        ({"name": "x", "rate": True}, "rate", "expected a number"),
        ({"name": "x", "inner": {"size": 1.5}}, "inner.size", "expected an integer"),
        ({"name": "x", "inner": {"size": 0}}, "inner.size", "must be > 0"),
        ({"name": "x", "inner": {"mode": "c"}}, "inner.mode", "valid values: 'a', 'b'"),
        ({"name": "x", "inner": {"oops": 1}}, "inner.oops", "unknown key"),
        ({"name": "x", "flags": 3}, "flags", "expected a list"),
    ],
)
def test_errors_name_the_key(data, key, fragment):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data)
    assert info.value.key == key
    assert fragment in str(info.value)


def test_yaml_python_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="evil.yaml: not valid YAML"):
        load_yaml(path)


def test_yaml_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  root: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(tmp_path / "missing.yaml")


def test_train_config_errors_name_file_and_full_key(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("model:\n  name: cnn\n  params:\n    filtrs: 3\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    assert str(info.value).startswith(f"{path}: model.params.filtrs: unknown key")
    path.write_text("model:\n  name: resnet9000\n")
    with pytest.raises(ConfigError, match="model.name: unknown model 'resnet9000'; valid: cnn"):
        load_train_config(path)
    path.write_text("training:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match="training.epochs: must be between 1 and 1000"):
        load_train_config(path)
    path.write_text("data:\n  val_fraction: 0.5\n  test_fraction: 0.5\n")
    with pytest.raises(ConfigError, match="data.val_fraction: val_fraction \\+ test_fraction"):
        load_train_config(path)


def test_overrides_merge_into_sections(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  image_size: 96\nmodel:\n  params:\n    preset: seed_3conv\n")
    cfg = load_train_config(path, {"data": {"root": "/x"}, "model": {"params": {"dropout": 0.1}}})
    assert isinstance(cfg, TrainConfig)
    assert (cfg.data.root, cfg.data.image_size) == ("/x", 96)
    assert cfg.model.params == {"preset": "seed_3conv", "dropout": 0.1}
