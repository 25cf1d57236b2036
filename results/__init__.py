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

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, public: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each public name from its module on first use
    (PEP 562), so importing one submodule of a room does not import the whole room."""

    def __getattr__(name: str) -> Any:
        if name in public:
            return getattr(importlib.import_module(public[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
