"""Finding pretrained weight files offline first, downloading only when allowed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pneumo_errors import WeightsNotFoundError

__all__ = ["WeightsConfig", "find_weights", "keras_cache_dirs", "resolve_weights"]


@dataclass(frozen=True)
class WeightsConfig:
    """Where ImageNet weight files are looked for.

    Attributes:
        dirs: Folders searched first, in order (file names as Keras names them). The
            environment variable ``PNEUMO_WEIGHTS_DIR`` (``:``-separated) adds more.
        allow_download: Let Keras download missing files into its cache. Off by default:
            nothing reaches the network unless a configuration says so.
    """

    dirs: tuple[str, ...] = ()
    allow_download: bool = False

    def search_dirs(self) -> list[Path]:
        """Returns the configured folders, then ``$PNEUMO_WEIGHTS_DIR``, then Keras' cache."""
        env = [d for d in os.environ.get("PNEUMO_WEIGHTS_DIR", "").split(os.pathsep) if d]
        return [Path(d).expanduser() for d in (*self.dirs, *env)] + keras_cache_dirs()


def keras_cache_dirs() -> list[Path]:
    """Returns the folders where Keras keeps downloaded application weights."""
    home = os.environ.get("KERAS_HOME")
    dirs = [Path(home) / "models"] if home else [Path.home() / ".keras" / "models"]
    dirs.append(Path("/tmp/.keras/models"))  # Keras' fallback when ~/.keras is read-only
    return dirs


def find_weights(file_names: list[str], config: WeightsConfig) -> Path | None:
    """Returns the first existing file among ``file_names`` in the search folders."""
    for name in file_names:
        for folder in config.search_dirs():
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def resolve_weights(model: str, file_names: list[str], config: WeightsConfig) -> str:
    """Returns what to pass as ``weights=`` to a Keras application.

    Args:
        model: Registry name, for messages.
        file_names: Keras' file names for the weights, best first.
        config: Where to look, and whether downloading is allowed.

    Returns:
        A file path, or ``"imagenet"`` when nothing is on disk and downloads are allowed
        (Keras then downloads into its cache).

    Raises:
        WeightsNotFoundError: Nothing on disk and downloads not allowed. The message names
            the file and the folders to put it in.
    """
    found = find_weights(file_names, config)
    if found is not None:
        return str(found)
    if config.allow_download:
        return "imagenet"
    folders = ", ".join(str(d) for d in config.search_dirs())
    raise WeightsNotFoundError(
        f"ImageNet weights for {model} not found offline: place {file_names[0]} in one of "
        f"{folders} (or set weights.dirs, or weights.allow_download: true, or use "
        f"model.params.weights: none)"
    )
