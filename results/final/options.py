"""The final stage's options: an experiment's ``final`` section and ``pneumo-search final``'s flags.

The keys are those of the section (``ensemble``, ``image_size``, ...); each flag is the key
with dashes (``--ensemble``, ``--image-size``), and a flag given on the command line
replaces the section's value (:func:`search.final_stage.final_options`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pneumo_core.configuration import require

#: The rules ``final --select`` accepts (:mod:`results.final.selection`).
SELECTION_RULES = ("objective", "simplest", "family", "suite")

__all__ = ["FinalOptions"]


@dataclass(frozen=True)
class FinalOptions:
    """How the final stage runs.

    Attributes:
        top: Configurations retrained (the top K of the leaderboard).
        seeds: Seeds per configuration.
        target_sensitivity: Sensitivity the operating threshold must reach on validation.
        epochs: Epoch budget of each retraining (default: the search's trial budget).
        image_size: Resolution of the retrainings (default: the search's): search cheaply
            at a low resolution, retrain the finalists at a higher one.
        n_boot: Bootstrap resamples for the AUC-type intervals.
        gallery: Worst false negatives and worst false positives shown (each).
        robustness: Re-score the test split under the robustness suite's shifts
            (:mod:`pneumo_core.robustness`; about 30 more predictions of the test split).
        ensemble: 0 for a single model, or K >= 2: the K best retrained configurations
            that differ (each its best seed) become one model averaging their probabilities;
            it is thresholded, tested, reported beside its members and exported.
        greedy: With ``ensemble``, choose the members by Caruana's greedy selection on
            validation (with replacement, up to ``ensemble`` picks, from the ``top``
            retrained candidates) instead of the K best.
        label_audit: 0 (off), or K >= 2: the label-noise audit (:mod:`results.final.label_audit`)
            with K out-of-fold retrainings of the chosen configuration over the train split.
        family_check: Also retrain the chosen configuration once per acquisition family
            held out of training and score it on that family (:mod:`results.final.family_check`;
            about 3 more retrainings).
        select: How the kept model is chosen among the retrained candidates tied with the
            best within its validation interval (:mod:`results.final.selection`): ``objective``
            (the best on validation), ``simplest`` (fewest parameters: the
            one-standard-error rule), ``family`` (best worst held-out family) or ``suite``
            (best robustness-suite mean on the validation images).
        max_epoch_s: The cost guard: only trials whose median epoch took at most this many
            seconds in the search, and that its time limit did not stop, are retrained
            (:func:`results.final.candidates.ranked_candidates`); None: the search's
            ``search.max_epoch_s``; 0: no limit.
        tta: Test-time augmentation: the exported model (single or ensemble) also averages
            over :data:`TTA_VIEWS`; reported beside the model without it.
        shortcut_audit: Report the shortcut audit (:mod:`results.final.shortcut`): border
            and centre probes on the train split, the model with its border bands masked.
        site: A labelled folder from another site (``NORMAL/``, ``PNEUMONIA/``) scored once
            the model and threshold are chosen, in its own report section
            (:mod:`results.final.site`); it chooses nothing. None: no site check.
        select_on_site: Opt in to rank the candidates tied within validation noise (and so
            the ensemble's members) by their recall-weighted AUC on the ``site`` sample
            instead of by ``select``; the report and card then call the model
            **site-selected** and the site's figures optimistic. The threshold stays
            validation's. Never the default.
        crop_scale: Retrain the finalists with random resized crops down to this share of
            the image area (``augment.crop_scale``; the search's trials keep theirs). None:
            the search's augmentation unchanged. The lever ``bench/site_levers.py``
            measures on the test-site sample.
    """

    top: int = 1
    seeds: int = 1
    target_sensitivity: float = 0.95
    epochs: int | None = None
    image_size: int | None = None
    n_boot: int = 1000
    gallery: int = 6
    robustness: bool = True
    ensemble: int = 0
    tta: bool = False
    family_check: bool = False
    greedy: bool = False
    label_audit: int = 0
    select: str = "objective"
    max_epoch_s: float | None = None
    shortcut_audit: bool = True
    site: str | None = None
    select_on_site: bool = False
    crop_scale: float | None = None

    def __post_init__(self) -> None:
        require(self.ensemble == 0 or self.ensemble >= 2, "ensemble", "must be 0 or >= 2")
        require(self.top >= 1, "top", "must be >= 1")
        require(self.seeds >= 1, "seeds", "must be >= 1")
        require(0 < self.target_sensitivity <= 1, "target_sensitivity", "must be in (0, 1]")
        require(self.epochs is None or self.epochs >= 1, "epochs", "must be >= 1")
        require(
            self.image_size is None or 16 <= self.image_size <= 1024,
            "image_size",
            "must be between 16 and 1024",
        )
        require(self.label_audit == 0 or self.label_audit >= 2, "label_audit", "must be 0 or >= 2")
        require(
            self.max_epoch_s is None or self.max_epoch_s >= 0,
            "max_epoch_s",
            "must be >= 0 (0 = no limit)",
        )
        require(
            not self.select_on_site or bool(self.site),
            "select_on_site",
            "needs a site sample (--site DIR or final: site:)",
        )
        require(
            not (self.select_on_site and self.greedy),
            "select_on_site",
            "cannot be combined with greedy (greedy picks members on validation)",
        )
        require(
            self.crop_scale is None or 0.05 <= self.crop_scale <= 1.0,
            "crop_scale",
            "must be in [0.05, 1]",
        )
        require(self.n_boot >= 50, "n_boot", "must be >= 50")
        require(self.gallery >= 0, "gallery", "must be >= 0")
        require(
            self.select in SELECTION_RULES,
            "select",
            "must be one of " + ", ".join(SELECTION_RULES),
        )
