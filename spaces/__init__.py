"""spaces: declarative search-space definitions and their conversion to Optuna.

Never imports TensorFlow.
"""

from __future__ import annotations

from spaces.registry import SpaceContext, build_space, list_spaces, register_space
from spaces.space import SearchSpace

__all__ = ["SearchSpace", "SpaceContext", "build_space", "list_spaces", "register_space"]
