"""results: four rooms, each with one job.

- :mod:`results.board`: the leaderboard (rows, ranking, ties, the locked CSV writer) and
  what reads it (the board view, the search summary);
- :mod:`results.report`: the report's metrics, HTML sections, plots and the model card;
- :mod:`results.serving`: the export (Keras file, SavedModel signatures, card), ``predict``
  and ``explain``;
- :mod:`results.final`: the final stage (candidates, selection, ensembles, checks, its
  options) that uses the three above.

Rooms import downward only: ``final`` -> ``serving`` -> ``report`` -> ``board``
(``tests/test_boundaries.py``).
"""

from __future__ import annotations
