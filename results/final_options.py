"""The final stage's options (``pneumo-search final``'s flags)."""

from __future__ import annotations

from dataclasses import dataclass

from pneumo_core.configuration import require

__all__ = ["FinalOptions"]


@dataclass(frozen=True)
class FinalOptions:
    """How the final stage runs.

    Attributes:
        top: Configurations retrained (the top K of the leaderboard).
        seeds: Seeds per configuration.
        target_sensitivity: Sensitivity the operating threshold must reach on validation.
        epochs: Epoch budget of each retraining (default: the search's trial budget).
        n_boot: Bootstrap resamples for the AUC-type intervals.
        gallery: Worst false negatives and worst false positives shown (each).
        robustness: Re-score the test split under the robustness suite's shifts
            (:mod:`pneumo_core.robustness`; about 30 more predictions of the test split).
        ensemble: 0 for a single model, or K >= 2: the K best retrained configurations
            that differ (each its best seed) become one model averaging their probabilities;
            it is thresholded, tested, reported beside its members and exported.
        tta: Test-time augmentation: the exported model (single or ensemble) also averages
            over :data:`TTA_VIEWS`; reported beside the model without it.
    """

    top: int = 1
    seeds: int = 1
    target_sensitivity: float = 0.95
    epochs: int | None = None
    n_boot: int = 1000
    gallery: int = 6
    robustness: bool = True
    ensemble: int = 0
    tta: bool = False

    def __post_init__(self) -> None:
        require(self.ensemble == 0 or self.ensemble >= 2, "--ensemble", "must be 0 or >= 2")
        require(self.top >= 1, "--top", "must be >= 1")
        require(self.seeds >= 1, "--seeds", "must be >= 1")
        require(0 < self.target_sensitivity <= 1, "--target-sensitivity", "must be in (0, 1]")
        require(self.epochs is None or self.epochs >= 1, "--epochs", "must be >= 1")
        require(self.n_boot >= 50, "n_boot", "must be >= 50")
        require(self.gallery >= 0, "gallery", "must be >= 0")
