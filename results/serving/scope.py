"""Scope checks from DICOM tags: is this a frontal pediatric chest radiograph?

The model card's intended use is frontal pediatric chest radiographs; a CT slice, a
lateral view or another body part would still get a confident answer. Before a
probability is given, a DICOM file's tags are checked (:class:`ScopeRules`): the modality
must be ``CR`` or ``DX``, the body part (when given) the chest, the view (when given) not
lateral; an adult age is a warning (in scope, with its reason), not a refusal. Files
without DICOM tags pass these checks unchecked (``in_scope`` stays empty: nothing says).
"""

from __future__ import annotations

from dataclasses import dataclass

from pneumo_core.data.dicom import DicomScope

__all__ = ["ScopeRules", "ScopeVerdict", "check_scope"]


@dataclass(frozen=True)
class ScopeRules:
    """What counts as in scope.

    Attributes:
        modalities: Accepted ``Modality`` values.
        body_parts: Accepted ``BodyPartExamined`` values (an absent one passes).
        lateral_views: ``ViewPosition`` values refused as lateral.
        adult_age_years: Age from which a warning is given (the card says pediatric);
            None: no age check.
    """

    modalities: tuple[str, ...] = ("CR", "DX")
    body_parts: tuple[str, ...] = ("CHEST", "THORAX", "LUNG", "CHEST_LAT")
    lateral_views: tuple[str, ...] = ("LL", "RL", "LAT", "LATERAL", "RLD", "LLD")
    adult_age_years: float | None = 18.0


@dataclass(frozen=True)
class ScopeVerdict:
    """``in_scope`` and why not (or what to be warned of), for the CSV."""

    in_scope: bool
    reason: str


def check_scope(scope: DicomScope, rules: ScopeRules | None = None) -> ScopeVerdict:
    """The verdict of a DICOM file's tags (every failed rule named, ``; ``-joined)."""
    rules = rules or ScopeRules()
    refused = []
    if scope.modality.upper() not in rules.modalities:
        refused.append(
            f"modality {scope.modality or 'missing'} is not {'/'.join(rules.modalities)}"
        )
    part = scope.body_part.upper()
    if part and part not in rules.body_parts:
        refused.append(f"body part {scope.body_part} is not the chest")
    if scope.view_position.upper() in rules.lateral_views or part == "CHEST_LAT":
        refused.append(f"lateral view ({scope.view_position or scope.body_part})")
    if refused:
        return ScopeVerdict(False, "; ".join(refused))
    age = scope.patient_age_years
    if rules.adult_age_years is not None and age is not None and age >= rules.adult_age_years:
        return ScopeVerdict(True, f"warning: age {age:g} years (the model is for children)")
    return ScopeVerdict(True, "")
