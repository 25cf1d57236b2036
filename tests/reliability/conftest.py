"""Fault and abuse suite (issue 8): each case crashes or abuses something on purpose, on real
Ray, Optuna and Keras, and asserts an exact outcome afterwards."""

from __future__ import annotations

from tests.search.conftest import cli_env  # noqa: F401  (the CLI environment fixture)
