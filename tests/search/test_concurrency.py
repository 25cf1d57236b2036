"""The concurrency limit after a resume from a torn saved state (search.concurrency)."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.search import Searcher

from search.concurrency import LimiterSync, ReconcilingLimiter, find_limiter


class _Counting(Searcher):
    def __init__(self):
        super().__init__(metric="m", mode="max")

    def suggest(self, trial_id):
        return {"x": 1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass


def _trial(trial_id: str, status: str) -> Trial:
    trial = Trial("trainable", config={}, trial_id=trial_id, stub=True)
    trial.set_status(status)
    return trial


def test_a_slot_held_by_a_trial_tune_lacks_or_finished_is_freed_at_the_next_step():
    limiter = ReconcilingLimiter(_Counting(), max_concurrent=3)
    # restored from a torn state: "gone" Tune never saved, "ended" Tune saved as finished
    limiter.set_state({**limiter.get_state(), "live_trials": {"gone", "ended", "running"}})
    assert limiter.suggest("new") is None  # every slot held: the search would wait forever
    sync = LimiterSync(limiter)
    sync.on_step_begin(0, [_trial("ended", Trial.TERMINATED), _trial("running", Trial.RUNNING)])
    assert limiter.live_trials == {"running"}  # a trial that still runs keeps its slot
    assert limiter.suggest("new") == limiter.suggest("next") == {"x": 1}
    assert limiter.suggest("another") is None  # the limit itself still holds
    assert find_limiter(limiter) is limiter and find_limiter(_Counting()) is None
