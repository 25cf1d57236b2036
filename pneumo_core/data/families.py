"""Acquisition families of the Kermany files, and folds that hold one family out.

The file names carry how an image came to the dataset: ``IM-…`` and ``NORMAL2-IM-…``
normals, ``personN_bacteria_…`` and ``personN_virus_…`` pneumonias. A model that only
scores well on families it was trained on is selecting for the collection, not the
disease; a fold that holds a family out of training measures that shift (issue 16).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FAMILIES", "FamilyFold", "acquisition_family", "family_folds"]

#: Family name -> the file-name pattern that marks it (searched in the file name).
FAMILIES = {
    "NORMAL2-IM": re.compile(r"^NORMAL2-IM-", re.I),
    "IM": re.compile(r"^IM-", re.I),
    "bacteria": re.compile(r"_bacteria_", re.I),
    "virus": re.compile(r"_virus_", re.I),
}


def acquisition_family(relpath: str) -> str:
    """The family of a file from its name (``other`` when no family's pattern matches)."""
    name = relpath.rsplit("/", 1)[-1]
    for family, pattern in FAMILIES.items():
        if pattern.search(name):
            return family
    return "other"


@dataclass(frozen=True)
class FamilyFold:
    """One family held out of training.

    Attributes:
        family: The held-out family.
        train: Indices to train on: the pool without that family and without any patient
            who has an image in it.
        val: Indices to score on: the held-out family's images, with the reference images
            of the other classes (so that the fold has both classes to rank).
    """

    family: str
    train: np.ndarray
    val: np.ndarray


def family_folds(
    relpaths: Sequence[str],
    patients: Sequence[str],
    labels: Sequence[int],
    pool: Sequence[int],
    reference: Sequence[int],
) -> list[FamilyFold]:
    """One fold per family present in ``pool``, each family held out once.

    Args:
        relpaths: Every image's relative path (its file name carries the family).
        patients: Every image's patient id.
        labels: Every image's label.
        pool: Indices folds train on (the train split).
        reference: Indices whose other-class images join each fold's validation (the
            validation split); patient-disjoint from ``pool``.

    Returns:
        The folds, in :data:`FAMILIES` order (``other`` is never held out).
    """
    pool = np.asarray(pool, dtype=np.int64)
    reference = np.asarray(reference, dtype=np.int64)
    families = np.array([acquisition_family(relpaths[i]) for i in range(len(relpaths))])
    labels = np.asarray(labels)
    folds = []
    for family in FAMILIES:
        held = pool[families[pool] == family]
        if held.size == 0:
            continue
        held_patients = {patients[i] for i in held}
        held_labels = set(labels[held].tolist())
        train = np.array(
            [i for i in pool if families[i] != family and patients[i] not in held_patients],
            dtype=np.int64,
        )
        others = reference[~np.isin(labels[reference], list(held_labels))]
        others = (
            others[[patients[i] not in held_patients for i in others]] if others.size else others
        )
        folds.append(FamilyFold(family, train, np.concatenate([held, others])))
    return folds
