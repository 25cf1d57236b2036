"""Cached vs uncached image loading, measured side by side in one run.

Decodes every image of a dataset with the same decoder the cache uses (one process, as a
trial without the cache would), builds the cache (parallel decode + write), then loads the
cached dataset several times (listing, content hashing, memory-map, and reading every
pixel), and prints the ratios.

    python bench/cache_speed.py --data ../shared/data/chest_xray_224 --size 128
    python bench/cache_speed.py --quick     # a few seconds, on chest_xray_mini
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pneumo_core.data import DataConfig, decode_image, prepare_data
from pneumo_core.data.discovery import list_images

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def measure(root: Path, size: int, repeats: int, limit: int | None) -> dict[str, float]:
    """Returns the timings (seconds) and ratios of uncached, building and cached loads."""
    with tempfile.TemporaryDirectory() as cache_dir:
        config = DataConfig(root=str(root), image_size=size, cache_dir=cache_dir)
        listing = list_images(root, classes=None, patient_regex=config.patient_regex)
        paths = [r.path for r in listing.records][:limit]
        start = time.perf_counter()
        for path in paths:
            decode_image(path, size, config.color_mode, config.aspect)
        per_file = (time.perf_counter() - start) / len(paths)
        uncached = per_file * len(listing.records)
        start = time.perf_counter()
        prepare_data(config)
        build = time.perf_counter() - start
        cached = []
        for _ in range(repeats):
            start = time.perf_counter()
            data = prepare_data(config)
            checksum = int(data.images.sum(dtype=np.uint64))  # read every pixel
            cached.append(time.perf_counter() - start)
            assert data.summary["cache"]["hit"] and checksum > 0
        cached_s = statistics.median(cached)
    return {
        "images": len(listing.records),
        "decoded_for_timing": len(paths),
        "uncached_s": uncached,
        "build_s": build,
        "cached_s": cached_s,
        "uncached_over_cached": uncached / cached_s,
        "build_over_cached": build / cached_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "chest_xray_224")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="chest_xray_mini, 200 decodes")
    args = parser.parse_args(argv)
    limit = None
    if args.quick:
        args.data, args.repeats, limit = DEFAULT_DATA / "chest_xray_mini", 3, 200
    r = measure(args.data, args.size, args.repeats, limit)
    print(f"dataset: {args.data} ({r['images']} images) at {args.size} px")
    note = (
        ""
        if r["decoded_for_timing"] == r["images"]
        else (f" (extrapolated from {r['decoded_for_timing']} files)")
    )
    print(f"uncached decode, 1 process : {r['uncached_s']:8.3f} s{note}")
    print(f"cache build (parallel)     : {r['build_s']:8.3f} s")
    print(f"cached load (median of {args.repeats}) : {r['cached_s']:8.3f} s")
    print(f"ratio uncached / cached    : {r['uncached_over_cached']:8.1f}x")
    print(f"ratio build / cached       : {r['build_over_cached']:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
