"""The final stage's room: candidates retrained, selection among ties, ensembles and TTA,
the checks (families, label audit), its options and the orchestration (:mod:`.stage`).

The top room of :mod:`results`: it may import ``board``, ``report`` and ``serving``. The
public names load on first use, so ``search`` can import :class:`SearchRecord` or
:class:`FinalOptions` without the whole stage.
"""

from __future__ import annotations

from results import lazy_exports

_PUBLIC = {
    "FinalOptions": "results.final.options",
    "FinalOutcome": "results.final.stage",
    "Retrained": "results.final.candidates",
    "SearchRecord": "results.final.record",
    "final_stage": "results.final.stage",
    "ranked_candidates": "results.final.candidates",
    "retrain": "results.final.candidates",
    "side_by_side": "results.final.ensemble",
}
__all__ = sorted(_PUBLIC)

__getattr__ = lazy_exports(__name__, _PUBLIC)
