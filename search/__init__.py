"""search: experiment configuration, Ray Tune + Optuna orchestration, and the CLI.

TensorFlow is imported only inside trials (and by the ``train`` command, which trains).
"""

from __future__ import annotations
