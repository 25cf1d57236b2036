"""Importing TensorFlow without its start-up noise.

TensorFlow's C++ runtime prints several lines (oneDNN notes, "could not find cuda
drivers") to file descriptor 2 before its logging is configured, ignoring
``TF_CPP_MIN_LOG_LEVEL``. The CLI and trials import it through :func:`import_tensorflow`,
which holds those lines back unless the import fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType

__all__ = ["import_tensorflow"]


def import_tensorflow(quiet: bool = True) -> ModuleType:
    """Imports and returns ``tensorflow``, hiding its start-up lines when ``quiet``.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=2`` and ``KERAS_BACKEND=tensorflow`` unless already
    set. If the import fails, the held-back lines are written to stderr before the error.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules or not quiet:
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow

            # Probing for GPUs prints "failed call to cuInit" on machines without one;
            # listing devices does not initialize them (memory growth can still be set).
            tensorflow.config.list_physical_devices("GPU")
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow
