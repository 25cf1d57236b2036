"""The decoded-image cache: decode and resize every file once, memory-map it afterwards.

A cache entry is a folder ``CACHE_DIR/<key>/`` holding ``images.npy`` (all images as one
``(N, size, size, channels)`` uint8 array) and ``index.json`` (file order, per-file decode
errors and source sizes). The key hashes the file list, each file's content hash, the size,
the color mode, the aspect handling and the decoder version, so any change to the data or
the preprocessing makes a new entry. Entries are built under a lock and moved into place
atomically; every process on a node then memory-maps the same file, so the page cache holds
one copy for all trials.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pneumo_core.data.decode import BadImageError, decode_image

__all__ = [
    "CACHE_VERSION",
    "DecodedImages",
    "default_cache_dir",
    "file_hashes",
    "load_or_build",
]

#: Bump when decoding changes, so old entries are not reused.
CACHE_VERSION = 2  # 2: TensorFlow decode and antialiased resize (was Pillow draft + resize)


@dataclass(frozen=True)
class DecodedImages:
    """Decoded pixels of a list of files.

    Attributes:
        images: ``(N, size, size, channels)`` uint8, memory-mapped read-only. Rows of files
            that failed to decode are zeros.
        errors: Per file, ``None`` or the reason it could not be decoded.
        infos: Per file, ``(width, height, mode, format)`` of the source, or ``None``.
        key: The cache key.
        path: The cache entry folder.
        hit: Whether the entry existed already.
        seconds: Time spent loading or building.
    """

    images: np.ndarray
    errors: tuple[str | None, ...]
    infos: tuple[tuple[int, int, str, str] | None, ...]
    key: str
    path: Path
    hit: bool
    seconds: float


def default_cache_dir() -> Path:
    """Returns ``$PNEUMO_CACHE_DIR`` or ``~/.cache/pneumo-search``."""
    env = os.environ.get("PNEUMO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pneumo-search"


def file_hashes(paths: Sequence[Path]) -> list[str | None]:
    """Returns the sha256 of each file's bytes, or ``None`` where it cannot be read."""
    hashes: list[str | None] = []
    for path in paths:
        try:
            hashes.append(hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            hashes.append(None)
    return hashes


def load_or_build(
    paths: Sequence[Path],
    relpaths: Sequence[str],
    hashes: Sequence[str | None],
    *,
    size: int,
    color_mode: str,
    aspect: str,
    cache_dir: Path,
    workers: int = 0,
) -> DecodedImages:
    """Returns the decoded images of ``paths``, from the cache or by building it.

    Args:
        paths: Files to decode, in the order rows should have.
        relpaths: Their paths relative to the dataset root (part of the key).
        hashes: Their content hashes from :func:`file_hashes` (part of the key).
        size: Side of the square images.
        color_mode: ``grayscale`` or ``rgb``.
        aspect: ``squash`` or ``pad``.
        cache_dir: Folder that holds cache entries.
        workers: Decoding processes; 0 = one per CPU.

    Returns:
        The memory-mapped images with per-file errors.
    """
    start = time.perf_counter()
    key = _cache_key(relpaths, hashes, size, color_mode, aspect)
    entry = cache_dir / key
    loaded = _try_load(entry, len(paths))
    if loaded is not None:
        return _result(loaded, key, entry, hit=True, start=start)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f"{key}.lock"):
        loaded = _try_load(entry, len(paths))  # another process may have built it
        if loaded is not None:
            return _result(loaded, key, entry, hit=True, start=start)
        _build(entry, paths, hashes, size, color_mode, aspect, workers)
        loaded = _try_load(entry, len(paths))
    if loaded is None:  # pragma: no cover - only if the disk lies
        raise OSError(f"decoded-image cache {entry} could not be read back after writing")
    return _result(loaded, key, entry, hit=False, start=start)


def _result(loaded, key: str, entry: Path, *, hit: bool, start: float) -> DecodedImages:
    images, errors, infos = loaded
    return DecodedImages(
        images, errors, infos, key, entry, hit, seconds=time.perf_counter() - start
    )


def _cache_key(
    relpaths: Sequence[str],
    hashes: Sequence[str | None],
    size: int,
    color_mode: str,
    aspect: str,
) -> str:
    digest = hashlib.sha256()
    digest.update(f"v{CACHE_VERSION}|{size}|{color_mode}|{aspect}\n".encode())
    for rel, content in zip(relpaths, hashes):
        digest.update(f"{rel}|{content}\n".encode())
    return f"{size}px-{color_mode}-{aspect}-{digest.hexdigest()[:24]}"


def _try_load(entry: Path, count: int):
    index_path, array_path = entry / "index.json", entry / "images.npy"
    if not (index_path.is_file() and array_path.is_file()):
        return None
    try:
        index = json.loads(index_path.read_text())
        images = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        shutil.rmtree(entry, ignore_errors=True)  # a damaged entry is rebuilt
        return None
    if images.shape[0] != count or len(index.get("errors", ())) != count:
        shutil.rmtree(entry, ignore_errors=True)
        return None
    infos = tuple(tuple(i) if i else None for i in index["infos"])
    return images, tuple(index["errors"]), infos


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _decode_one(job: tuple[str, int, str, str]):
    path, size, color_mode, aspect = job
    try:
        pixels, info = decode_image(path, size, color_mode, aspect)  # type: ignore[arg-type]
    except BadImageError as exc:
        return None, exc.reason, None
    return pixels, None, (info.width, info.height, info.mode, info.format)


def _build(
    entry: Path,
    paths: Sequence[Path],
    hashes: Sequence[str | None],
    size: int,
    color_mode: str,
    aspect: str,
    workers: int,
) -> None:
    channels = 1 if color_mode == "grayscale" else 3
    tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    images = np.lib.format.open_memmap(
        tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(paths), size, size, channels)
    )
    errors: list[str | None] = [None] * len(paths)
    infos: list[tuple[int, int, str, str] | None] = [None] * len(paths)
    jobs = [(str(p), size, color_mode, aspect) for p in paths]
    for i, (pixels, error, info) in enumerate(_decode_all(jobs, workers)):
        if hashes[i] is None and error is None:
            error = "unreadable"
        errors[i], infos[i] = error, info
        if pixels is not None and error is None:
            images[i] = pixels
    images.flush()
    del images
    index = {"version": CACHE_VERSION, "errors": errors, "infos": infos}
    (tmp / "index.json").write_text(json.dumps(index))
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(tmp, entry)


def _decode_all(jobs: list[tuple[str, int, str, str]], workers: int):
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) < 64:
        yield from map(_decode_one, jobs)
        return
    # Threads, not processes: Pillow releases the GIL while it decodes and resizes, and a
    # process pool would re-import the caller's __main__ (a script, a Ray worker).
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        yield from pool.map(_decode_one, jobs)
