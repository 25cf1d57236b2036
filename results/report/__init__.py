"""The report room: the report's metrics with intervals (:mod:`.evaluation`), its HTML
sections (:mod:`.html` and the section modules), plots and the model card.

Imports no other room of :mod:`results`. The public names load on first use (plots pull in
matplotlib), so importing a submodule stays cheap.
"""

from __future__ import annotations

from results import lazy_exports

_PUBLIC = {
    "binary_evaluation": "results.report.evaluation",
    "calibration": "results.report.evaluation",
    "model_card": "results.report.model_card",
    "render_html": "results.report.html",
    "write_report": "results.report.html",
}
__all__ = sorted(_PUBLIC)

__getattr__ = lazy_exports(__name__, _PUBLIC)
