"""What the one in-graph preprocessing (issue 17) cost or gained, side by side in one run.

Before: Pillow decoded each file with ``draft()`` (JPEG DCT scaling) and resized with
``reducing_gap=3.0`` (reimplemented below as it was). After: TensorFlow's
``tf.io.decode_image`` and an antialiased bilinear ``tf.image.resize``
(:func:`pneumo_core.data.decode.decode_image`), the same ops as the SavedModel's
``serve_bytes`` signature. This measures, for one dataset:

* decode time per image, each decoder (single thread, as a trial without the cache);
* how far the pixels differ (mean and 99th percentile of the absolute uint8 difference);
* a model trained on each decoder's pixels (same configuration and seeds): validation and
  test AUC, medians over seeds.

    python bench/decoder.py ../shared/data/chest_xray_mini --seeds 0 1 2
    python bench/decoder.py ../shared/data/chest_xray_mini --quick
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pillow_draft_decode(path, size: int, color_mode: str, aspect: str):
    """The decoder before issue 17 (8-bit gray or RGB files only, which is all the data)."""
    from PIL import Image

    from pneumo_core.data.decode import ImageInfo

    image = Image.open(io.BytesIO(Path(path).read_bytes()))
    info = ImageInfo(image.width, image.height, image.mode, image.format or "?")
    image.draft(None, (size, size))
    image.load()
    image = image.convert("L" if color_mode == "grayscale" else "RGB")
    if aspect == "squash":
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    else:
        raise SystemExit("bench/decoder.py measures aspect squash only")
    array = np.asarray(image, dtype=np.uint8)
    return (array[:, :, None] if array.ndim == 2 else array), info


def decode_timing(paths, size: int) -> dict[str, Any]:
    from pneumo_core.data.decode import decode_image

    decode_image(paths[0], size, "grayscale", "squash")  # TensorFlow imported and traced
    out: dict[str, Any] = {}
    pixels = {}
    for name, fn in (("pillow_draft", pillow_draft_decode), ("tensorflow", decode_image)):
        start = time.perf_counter()
        pixels[name] = np.stack([fn(p, size, "grayscale", "squash")[0] for p in paths])
        out[f"{name}_ms_per_image"] = 1000 * (time.perf_counter() - start) / len(paths)
    diff = np.abs(pixels["pillow_draft"].astype(int) - pixels["tensorflow"].astype(int))
    out["mean_abs_pixel_difference"] = float(diff.mean())
    out["p99_abs_pixel_difference"] = float(np.percentile(diff, 99))
    return out


def train_with(decoder, root: Path, size: int, epochs: int, seed: int) -> dict[str, float]:
    """Trains seed_3conv on ``root`` with the cache built by ``decoder``; val and test AUC."""
    import pneumo_core.data.cache as cache
    from pneumo_core.configuration import from_dict
    from pneumo_core.data import prepare_data
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import compute_metrics
    from pneumo_core.train.config import TrainConfig
    from pneumo_core.train.loop import train_model

    original = cache.decode_image
    with tempfile.TemporaryDirectory() as cache_dir:
        cache.decode_image = decoder
        try:
            config = from_dict(
                TrainConfig,
                {
                    "data": {"root": str(root), "image_size": size, "cache_dir": cache_dir},
                    "model": {"name": "cnn", "params": {"preset": "seed_3conv"}},
                    "training": {"epochs": epochs, "early_stopping_patience": 0},
                    "seed": seed,
                },
            )
            data = prepare_data(config.data)
        finally:
            cache.decode_image = original
        result = train_model(config, data)
        scores = {}
        for split in ("val", "test"):
            images, labels = data.arrays(split)
            probs = predict_batches(result.model, images)
            scores[f"{split}_auc"] = compute_metrics(labels, probs, names=["auc"])["auc"]
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset folder (split/class layout)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="32 px, 1 epoch, 1 seed, 60 files")
    args = parser.parse_args(argv)

    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()  # first, so that its start-up lines stay hidden
    from pneumo_core.data.decode import decode_image
    from pneumo_core.data.discovery import list_images
    from pneumo_core.train.loop import configure_threads

    configure_threads(2)
    size, epochs, seeds = args.size, args.epochs, args.seeds
    paths = [r.path for r in list_images(args.data, classes=None, patient_regex=r".*").records]
    if args.quick:
        size, epochs, seeds, paths = 32, 1, seeds[:1], paths[:60]
    timing = decode_timing(paths, size)
    print(f"{args.data}: {len(paths)} files decoded at {size} px, one thread")
    for key, value in timing.items():
        print(f"  {key:<28}: {value:.3f}")
    ratio = timing["tensorflow_ms_per_image"] / timing["pillow_draft_ms_per_image"]
    print(f"  ratio tensorflow / pillow_draft decode time : {ratio:.2f}")
    if args.quick:
        return 0
    rows = {"pillow_draft": [], "tensorflow": []}
    for seed in seeds:
        for name, decoder in (("pillow_draft", pillow_draft_decode), ("tensorflow", decode_image)):
            rows[name].append(train_with(decoder, args.data, size, epochs, seed))
            print(f"  seed {seed} {name:<13}: {rows[name][-1]}", flush=True)
    print(f"seed_3conv, {size} px, {epochs} epochs, seeds {seeds} (medians):")
    for name, results in rows.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(f"  {name:<13} val AUC {med['val_auc']:.4f}  test AUC {med['test_auc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
