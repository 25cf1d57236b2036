"""spaces: declarative search-space definitions and their conversion to Optuna.

Never imports TensorFlow, nor any other package of pneumo-search but ``pneumo_errors``.
"""

from __future__ import annotations

# The shipped spaces register as spaces.builtin loads; the registry imports no space.
from spaces import builtin  # noqa: F401  (registers the shipped spaces)
from spaces.registry import SpaceContext, build_space, list_spaces, register_space
from spaces.space import SearchSpace

__all__ = ["SearchSpace", "SpaceContext", "build_space", "list_spaces", "register_space"]
