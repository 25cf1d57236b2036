"""results: leaderboard, final retrain, report, export and predict."""

from __future__ import annotations
