"""Checkpoint folders on disk: their manifest (sha256 per file) and their order."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pneumo_errors import CheckpointError

__all__ = ["MANIFEST_FILE", "checkpoint_index", "sha256_file", "verify_manifest"]

#: Written last by a checkpoint save: ``{file name: sha256}``.
MANIFEST_FILE = "manifest.json"


def checkpoint_index(path: Path) -> int | None:
    """The NNNNNN of a ``checkpoint_NNNNNN`` folder (``None`` for another name)."""
    match = re.fullmatch(r"checkpoint_(\d+)", path.name)
    return int(match.group(1)) if match else None


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_manifest(folder: Path) -> None:
    """Checks every file of a checkpoint folder against its manifest.

    Raises:
        CheckpointError: No manifest (the save did not finish), or a file missing or
            changed.
    """
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise CheckpointError(f"{folder}: no {MANIFEST_FILE} (incomplete or damaged checkpoint)")
    try:
        expected = json.loads(manifest.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{manifest}: unreadable ({exc})") from None
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        if sha256_file(path) != digest:
            raise CheckpointError(f"{path}: damaged (sha256 differs from the manifest)")
