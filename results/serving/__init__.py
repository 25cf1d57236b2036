"""The serving room: the export (Keras file, SavedModel with ``serve`` and ``serve_bytes``,
the card with hashes), ``predict`` and ``explain``.

May import :mod:`results.board` (the CSV writer) and :mod:`results.report` (the Grad-CAM
figure). The public names load on first use (TensorFlow stays unimported until needed).
"""

from __future__ import annotations

from results import lazy_exports

_PUBLIC = {
    "copy_export": "results.serving.export",
    "explain_image": "results.serving.predict",
    "export_model": "results.serving.export",
    "load_exported": "results.serving.export",
    "predict_files": "results.serving.predict",
    "predictions_csv": "results.serving.predict",
    "read_card": "results.serving.export",
}
__all__ = sorted(_PUBLIC)

__getattr__ = lazy_exports(__name__, _PUBLIC)
