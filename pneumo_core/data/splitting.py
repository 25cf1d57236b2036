"""Stratified, patient-grouped carving of validation and test splits."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["carve_splits"]


def carve_splits(
    labels: Sequence[int],
    groups: Sequence[str],
    fractions: Mapping[str, float],
    *,
    seed: int,
) -> list[str]:
    """Assigns each image to ``train`` or to one of the carved splits, by patient.

    Every image of one patient lands in the same split. Patients are stratified by their
    most common label, so each carved split gets about ``fraction`` of every class. Within
    a class, patients are shuffled with ``seed`` and each goes to the carved split that is
    furthest below its target, as long as that brings the split closer to the target;
    otherwise to train. A carved split that would end up with no patient of a class that
    has at least ``len(fractions) + 1`` patients gets one.

    Args:
        labels: Label of each image.
        groups: Patient id of each image.
        fractions: Carved split name -> share of images, e.g. ``{"val": 0.15}``.
        seed: Seed of the patient shuffle.

    Returns:
        The split name of each image, in input order.
    """
    if len(labels) != len(groups):
        raise ValueError("labels and groups must have the same length")
    group_labels: dict[str, Counter[int]] = defaultdict(Counter)
    for label, group in zip(labels, groups):
        group_labels[group][label] += 1
    strata: dict[int, list[str]] = defaultdict(list)
    for group, counts in group_labels.items():
        majority = min(counts, key=lambda lab: (-counts[lab], lab))
        strata[majority].append(group)
    rng = np.random.default_rng(seed)
    names = list(fractions)
    assigned: dict[str, str] = {}
    for stratum in sorted(strata):
        members = sorted(strata[stratum])
        rng.shuffle(members)
        sizes = {g: sum(group_labels[g].values()) for g in members}
        total = sum(sizes.values())
        targets = {n: fractions[n] * total for n in names}
        filled = dict.fromkeys(names, 0)
        for group in members:
            best = max(names, key=lambda n: targets[n] - filled[n])
            if targets[best] - filled[best] >= sizes[group] / 2:
                assigned[group] = best
                filled[best] += sizes[group]
            else:
                assigned[group] = "train"
        if len(members) > len(names):
            for name in names:
                if filled[name] == 0:
                    in_train = [g for g in members if assigned[g] == "train"]
                    if len(in_train) > 1:
                        smallest = min(in_train, key=lambda g: (sizes[g], g))
                        assigned[smallest] = name
                        filled[name] += sizes[smallest]
    return [assigned[g] for g in groups]
