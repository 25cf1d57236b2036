"""``max_concurrent_trials`` that survives a resume from a torn saved state.

Ray Tune's :class:`~ray.tune.search.ConcurrencyLimiter` keeps the ids of the trials it let
start (``live_trials``) and suggests nothing while ``max_concurrent_trials`` of them have
not ended. Its state and Tune's own trial list are saved side by side and uploaded to the
run's store file by file; a driver killed during an upload (more likely at a storage URI)
leaves a limiter state from one moment and a trial list from another. Resumed from that,
the limiter may hold a trial Tune does not have, or one Tune already finished: that trial
never ends again, its slot is never freed, and with one slot the search waits forever.

:class:`ReconcilingLimiter` forgets such trials, and :class:`LimiterSync` (a driver
callback) tells it, at every step of the search, which trials Tune has that have not ended.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ray.tune import Callback
from ray.tune.search import ConcurrencyLimiter, Searcher

from search.searcher import find_wrapped

__all__ = ["LimiterSync", "ReconcilingLimiter", "find_limiter"]


class ReconcilingLimiter(ConcurrencyLimiter):
    """A ConcurrencyLimiter that can drop trials the search no longer has running."""

    def keep_only(self, unfinished_trial_ids: Iterable[str]) -> None:
        """Frees the slots of live trials that are not among ``unfinished_trial_ids``.

        Args:
            unfinished_trial_ids: Ids of the trials Tune holds that have not ended.
        """
        self.live_trials &= set(unfinished_trial_ids)


class LimiterSync(Callback):
    """Keeps a :class:`ReconcilingLimiter` in step with the trials Tune actually holds.

    Args:
        limiter: The search's limiter (re-linked by :meth:`follow` after a resume).
    """

    def __init__(self, limiter: ReconcilingLimiter) -> None:
        self.limiter = limiter

    def follow(self, limiter: ReconcilingLimiter) -> None:
        """Works with ``limiter`` (the one a restored Tuner holds)."""
        self.limiter = limiter

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.limiter.keep_only(t.trial_id for t in trials if not t.is_finished())


def find_limiter(search_alg: Searcher | None) -> ReconcilingLimiter | None:
    """The :class:`ReconcilingLimiter` in a chain of searcher wrappers, if there is one."""
    return find_wrapped(search_alg, ReconcilingLimiter)
