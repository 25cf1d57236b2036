"""How ``search.startup_trials`` and ``search.constant_liar`` reach the Optuna sampler."""

from __future__ import annotations

import pytest

from search.config import SearchConfig
from search.samplers import make_sampler


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"max_concurrent_trials": 16}, 40),  # 2.5 per concurrent trial
        ({"max_concurrent_trials": 2}, 10),  # never fewer than TPE's own 10
        ({"max_concurrent_trials": 0}, None),  # unknown concurrency: TPE's default
        ({"max_concurrent_trials": 16, "sampler": "cmaes"}, None),  # measured for TPE only
        ({"max_concurrent_trials": 16, "startup_trials": 5}, 5),  # a set value wins
    ],
)
def test_start_up_trials_follow_the_concurrency_unless_set(settings, expected):
    assert SearchConfig(**settings).resolved_startup_trials() == expected


def test_the_tpe_sampler_gets_the_resolved_options():
    config = SearchConfig(max_concurrent_trials=16, constant_liar=True)
    sampler = make_sampler("tpe", 0, config.sampler_options())
    assert sampler._n_startup_trials == 40 and sampler._constant_liar is True
