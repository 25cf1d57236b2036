"""Finds the images of a dataset folder in either supported layout.

Layouts:
    * ``ROOT/{train,val,test}/CLASS/*`` (the public Kermany layout; ``val`` and ``test``
      are optional).
    * ``ROOT/CLASS/*``: one pool of images that pneumo-search splits itself.

Structural problems (missing root, missing or empty class folder, a class missing from a
split) raise :class:`~pneumo_errors.DataError` naming the path. Individual files are
not opened here: decoding decides which ones are usable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pneumo_core.data.patients import patient_id
from pneumo_errors import DataError

__all__ = ["SPLITS", "ImageRecord", "Listing", "list_images"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageRecord:
    """One image file found in the dataset.

    Attributes:
        path: Absolute path of the file.
        relpath: Path relative to the dataset root, with ``/`` separators.
        label: Index of the class in the dataset's class list.
        given_split: ``train``/``val``/``test`` when the layout has split folders, else
            ``None``.
        patient: Patient id parsed from the file name.
    """

    path: Path
    relpath: str
    label: int
    given_split: str | None
    patient: str


@dataclass(frozen=True)
class Listing:
    """What :func:`list_images` found.

    Attributes:
        root: The dataset root.
        layout: ``splits`` or ``classes``.
        class_names: Class names in label order.
        records: Every candidate image file, sorted by relative path.
        ignored: Relative paths of files that sit outside any class folder.
        hidden: Hidden files and folders (``.name``, ``__name``) skipped in class folders.
    """

    root: Path
    layout: str
    class_names: tuple[str, ...]
    records: tuple[ImageRecord, ...]
    ignored: tuple[str, ...]
    hidden: int = 0


def list_images(
    root: str | Path, *, classes: tuple[str, ...] | None, patient_regex: str
) -> Listing:
    """Lists the image files of a dataset folder.

    Args:
        root: The dataset folder.
        classes: Class names in label order, or ``None`` for the sorted folder names.
        patient_regex: Regex that gives the patient id from a file name.

    Returns:
        The listing, records sorted by relative path.

    Raises:
        DataError: The root is missing or not a folder, has no class folders, a class
            folder is missing from a split or holds no file, or ``train`` is missing while
            ``val`` or ``test`` exist.
    """
    if not str(root):
        raise DataError("no data folder given: set data.root or pass --data PATH")
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"data folder is not a directory: {root}")
    pattern = re.compile(patient_regex)
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not _hidden(p.name))
    split_dirs = [s for s in SPLITS if s in subdirs]
    ignored: list[str] = []
    if split_dirs:
        if "train" not in split_dirs:
            raise DataError(f"{root}: has {'/'.join(split_dirs)} folders but no train/ folder")
        layout = "splits"
        ignored += [p for p in _plain_files(root, root)]
        ignored += [f"{d}/" for d in subdirs if d not in SPLITS]
        found = {s: _class_dirs(root / s) for s in split_dirs}
        if not found["train"]:
            raise DataError(f"{root / 'train'}: no class folders (expected train/CLASS/*)")
        names = classes or tuple(sorted(found["train"]))
        for split, class_dirs in found.items():
            missing = [c for c in names if c not in class_dirs]
            if missing:
                raise DataError(f"{root / split / missing[0]}: class folder missing")
            extra = [c for c in class_dirs if c not in names]
            ignored += [f"{split}/{c}/" for c in extra]
            ignored += _plain_files(root / split, root)
        sources = [(s, c) for s in split_dirs for c in names]
    else:
        layout = "classes"
        if not subdirs:
            raise DataError(
                f"{root}: no class folders; expected ROOT/CLASS/* or ROOT/train/CLASS/*"
            )
        names = classes or tuple(subdirs)
        missing = [c for c in names if c not in subdirs]
        if missing:
            raise DataError(f"{root / missing[0]}: class folder missing")
        ignored += _plain_files(root, root)
        ignored += [f"{d}/" for d in subdirs if d not in names]
        sources = [(None, c) for c in names]
    if len(names) < 2:
        raise DataError(f"{root}: found one class ({names[0]}); at least two are needed")
    records: list[ImageRecord] = []
    hidden = 0
    for split, class_name in sources:
        folder = root / split / class_name if split else root / class_name
        prefix = f"{split}/{class_name}" if split else class_name
        files, skipped = _walk_files(str(folder), prefix)
        hidden += skipped
        if not files:
            raise DataError(f"{folder}: class folder has no files")
        label = names.index(class_name)
        for full, rel, name in files:
            records.append(ImageRecord(Path(full), rel, label, split, patient_id(name, pattern)))
    records.sort(key=lambda r: r.relpath)
    return Listing(root, layout, tuple(names), tuple(records), tuple(sorted(ignored)), hidden)


def _walk_files(folder: str, prefix: str) -> tuple[list[tuple[str, str, str]], int]:
    """``(path, relpath, name)`` of every non-hidden file (or link) under ``folder``, and
    how many hidden files and folders were skipped."""
    found = []
    hidden = 0
    for current, dirs, files in os.walk(folder):
        hidden += sum(_hidden(d) for d in dirs) + sum(_hidden(n) for n in files)
        dirs[:] = [d for d in dirs if not _hidden(d)]
        rel_dir = os.path.relpath(current, folder)
        base = prefix if rel_dir == "." else f"{prefix}/{rel_dir.replace(os.sep, '/')}"
        for name in files:
            if not _hidden(name):
                found.append((os.path.join(current, name), f"{base}/{name}", name))
    return found, hidden


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))


def _plain_files(folder: Path, root: Path) -> list[str]:
    return [
        p.relative_to(root).as_posix()
        for p in sorted(folder.iterdir())
        if p.is_file() and not _hidden(p.name)
    ]
