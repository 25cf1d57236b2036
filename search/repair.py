"""Before a resume: checkpoints the saved Tune state points at but that are gone.

Ray Tune restores each unfinished trial from the newest checkpoint its saved state names and
gives up on the trial if that folder no longer exists. A placeholder folder (no manifest)
lets the trial itself fall back to the newest valid older checkpoint
(:meth:`pneumo_core.train.loop.ResumeState.load_latest_valid`).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["recreate_missing_checkpoints", "referenced_checkpoints"]

_CHECKPOINT = re.compile(rb"/([\x20-\x7e]+?)/(checkpoint_\d{6})")


def _pickled_blobs(value: Any) -> Iterator[bytes]:
    """Ray's serialized objects ({"_type": "CLOUDPICKLE_FALLBACK", "value": HEX}), also
    inside JSON documents stored as strings."""
    if isinstance(value, dict):
        if value.get("_type") == "CLOUDPICKLE_FALLBACK" and isinstance(value.get("value"), str):
            yield bytes.fromhex(value["value"])
        for item in value.values():
            yield from _pickled_blobs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _pickled_blobs(item)
    elif isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(ValueError):
            yield from _pickled_blobs(json.loads(value))


def referenced_checkpoints(run_dir: Path) -> set[Path]:
    """Checkpoint folders the newest ``experiment_state-*.json`` of a run keeps.

    The paths sit inside Ray's serialized checkpoint managers; only their last two parts
    (trial folder, checkpoint folder) are kept and re-rooted at ``run_dir``, so a run folder
    that was moved is handled too.
    """
    states = sorted(run_dir.glob("experiment_state-*.json"))
    if not states:
        return set()
    try:
        state = json.loads(states[-1].read_text())
    except (OSError, ValueError):
        return set()  # unreadable: nothing to repair here (Tune reports it on restore)
    found = set()
    for blob in _pickled_blobs(state):
        for match in _CHECKPOINT.finditer(blob):
            trial = match.group(1).decode().rsplit("/", 1)[-1]
            found.add(run_dir / trial / match.group(2).decode())
    return {path for path in found if path.parent.is_dir()}


def recreate_missing_checkpoints(run_dir: Path) -> list[Path]:
    """Creates an empty placeholder for each referenced checkpoint folder that is gone.

    Returns:
        The folders created.
    """
    created = []
    for path in sorted(referenced_checkpoints(run_dir)):
        if not path.exists():
            path.mkdir()
            created.append(path)
    return created
