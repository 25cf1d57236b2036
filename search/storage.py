"""Where a run lives: a local (or shared) folder, or a storage URI with a local mirror.

With ``output_dir: s3://bucket/runs/NAME`` (any URI pyarrow opens: ``s3://``, ``gs://``,
``abfs://``, ``hdfs://``; query options such as ``?endpoint_override=HOST:PORT&scheme=http``
for S3-compatible stores), Ray Tune writes trial folders and checkpoints there itself; the
driver keeps its own files (leaderboard, trials.csv, optuna.db, experiment.yaml, ...) in a
local mirror and uploads each one whenever it changes, so the URI always holds the current
leaderboard. ``resume URI`` downloads them back first, on any machine.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pneumo_contracts.run_folder import DRIVER_FILES, OPTUNA_FILE

__all__ = [
    "DRIVER_FILES",
    "OPTUNA_FILE",
    "RunLocation",
    "is_uri",
    "run_location",
]


def is_uri(text: str) -> bool:
    """Whether ``text`` is a storage URI (``scheme://...``), not a local path."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text)) and not text.startswith("file:")


def _mirror_root() -> Path:
    root = os.environ.get("PNEUMO_MIRROR_DIR")
    return Path(root) if root else Path.home() / ".cache" / "pneumo-search" / "runs"


@dataclass(frozen=True)
class RunLocation:
    """A run's place: ``local`` is the run folder itself, or the mirror of ``uri``.

    Attributes:
        local: Local folder holding the driver's files.
        uri: The run's URI (with its query options), or ``None`` for a local run.
    """

    local: Path
    uri: str | None = None

    @property
    def name(self) -> str:
        """The run's name (its last path component)."""
        return self.local.name

    def tune_storage(self) -> str:
        """Ray Tune's ``storage_path``: the folder or URI the run folder sits in."""
        if self.uri is None:
            return str(self.local.parent)
        base, _, query = self.uri.partition("?")
        parent = base.rstrip("/").rsplit("/", 1)[0]
        return f"{parent}?{query}" if query else parent

    def tune_path(self) -> str:
        """The run folder as Ray Tune restores it (folder or URI)."""
        return str(self.local) if self.uri is None else self.uri

    @functools.cached_property
    def _store(self):
        """``(filesystem, path)`` of the URI, opened once (uploads happen every epoch)."""
        import pyarrow.fs

        filesystem, path = pyarrow.fs.FileSystem.from_uri(self.uri)
        return filesystem, path.rstrip("/")

    def upload(self, names: tuple[str, ...] | list[str] = DRIVER_FILES) -> None:
        """Copies the named driver files that exist locally to the URI (no-op when local)."""
        if self.uri is None:
            return
        import pyarrow.fs

        filesystem, path = self._store
        for name in names:
            source = self.local / name
            if source.is_file():
                pyarrow.fs.copy_files(
                    str(source), f"{path}/{name}", destination_filesystem=filesystem
                )

    def download(self) -> None:
        """Copies the driver files the URI holds into the local mirror (no-op when local)."""
        if self.uri is None:
            return
        import pyarrow.fs

        filesystem, path = self._store
        self.local.mkdir(parents=True, exist_ok=True)
        for name in DRIVER_FILES:
            info = filesystem.get_file_info(f"{path}/{name}")
            if info.type == pyarrow.fs.FileType.File:
                pyarrow.fs.copy_files(
                    f"{path}/{name}", str(self.local / name), source_filesystem=filesystem
                )

    def has_tune_state(self) -> bool:
        """Whether the run already holds a search (Ray Tune's experiment state)."""
        if self.uri is None:
            return any(self.local.glob("experiment_state-*.json"))
        import pyarrow.fs

        filesystem, path = self._store
        selector = pyarrow.fs.FileSelector(path, allow_not_found=True)
        return any(
            Path(info.path).name.startswith("experiment_state-")
            for info in filesystem.get_file_info(selector)
        )


def run_location(run_dir: str | Path) -> RunLocation:
    """The location of a run given as a folder or a URI.

    A URI's local mirror is ``~/.cache/pneumo-search/runs/<hash of the URI>/NAME`` (or under
    ``PNEUMO_MIRROR_DIR``): the same URI always maps to the same mirror.
    """
    text = str(run_dir)
    if not is_uri(text):
        return RunLocation(Path(text).expanduser().resolve())
    base = text.partition("?")[0].rstrip("/")
    name = base.rsplit("/", 1)[-1]
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return RunLocation(_mirror_root() / digest / name, uri=text)
