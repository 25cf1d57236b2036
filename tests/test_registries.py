"""Every registry (models, spaces, samplers, metrics) answers an unknown name the same way."""

from __future__ import annotations

import pickle

import pytest

from pneumo_core.metrics import METRICS, get_metric
from pneumo_core.models import get_model_spec, list_models
from pneumo_errors import ConfigError, UnknownNameError
from search.samplers import SAMPLERS, make_sampler
from spaces import SpaceContext, list_spaces
from spaces.registry import space_definition

REGISTRIES = {
    "model": (lambda name: get_model_spec(name), lambda: list_models(), "model.name"),
    "space": (lambda name: space_definition(name, SpaceContext()), lambda: list_spaces(), "space"),
    "sampler": (lambda name: make_sampler(name, 0), lambda: list(SAMPLERS), "search.sampler"),
    "metric": (lambda name: get_metric(name), lambda: list(METRICS), "metric"),
}


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_unknown_name_raises_one_error_type_listing_the_valid_names(kind):
    lookup, names, key = REGISTRIES[kind]
    with pytest.raises(UnknownNameError) as caught:
        lookup("no-such-thing")
    error = caught.value
    assert isinstance(error, ConfigError) and isinstance(error, KeyError)
    assert error.key == key
    assert str(error) == (f"{key}: unknown {kind} 'no-such-thing'; valid: {', '.join(error.valid)}")
    assert set(error.valid) == set(names()) and len(error.valid) >= 3
    copy = pickle.loads(pickle.dumps(error))  # Ray ships errors between processes
    assert type(copy) is UnknownNameError and str(copy) == str(error)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registered_name_is_found(kind):
    lookup, names, _ = REGISTRIES[kind]
    for name in names():
        if kind == "sampler" and name == "gp":
            continue  # needs PyTorch (the `gp` extra); its own test covers the message
        assert lookup(name) is not None
