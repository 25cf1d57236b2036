"""Contracts shared by every package above: the run folder's file names and trial statuses.

Like :mod:`pneumo_errors`, it imports nothing of the project but that package, so
``pneumo_core`` (training outcomes), ``results`` (the leaderboard, the final stage) and
``search`` (the driver) agree on one spelling of each.
"""

from __future__ import annotations
