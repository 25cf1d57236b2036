"""pneumo_core: the TensorFlow side of pneumo-search (data, models, metrics, training).

This package never imports Ray. Its top level imports nothing heavy, so that the search
driver can read configurations without loading TensorFlow; TensorFlow is imported by the
modules that need it (``pneumo_core.models``, ``pneumo_core.train``,
``pneumo_core.data.pipeline``).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
