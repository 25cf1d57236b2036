"""spaces: declarative search-space definitions and their conversion to Optuna.

Never imports TensorFlow.
"""

from __future__ import annotations
