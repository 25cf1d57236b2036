"""The pixel scope detector's false alarms and detections, over split seeds (issue 38).

For each seed the dataset is split by patient as ``final`` sees it (``data.split_seed``),
the detector (:mod:`results.serving.pixel_scope`) is fitted on the train split and
thresholded on validation at a 1% false-alarm rate, and measured:

- **false alarms** (in-scope images flagged) on the carved test split and on each
  ``--in-scope`` folder (e.g. ``../shared/data/chest_xray_mini/test`` and
  ``../shared/data/chest_xray_shift_dev``), with Wilson intervals;
- **detection** (out-of-scope images flagged) per kind, as ``final`` reports it
  (:func:`results.final.scope_check.out_of_scope_images`).

    python bench/pixel_scope.py ../shared/data/chest_xray_224 --image-size 160 \\
        --in-scope ../shared/data/chest_xray_mini/test ../shared/data/chest_xray_shift_dev
    python bench/pixel_scope.py ../shared/data/chest_xray_mini --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def folder_images(folder: Path, size: int) -> np.ndarray:
    """Every readable image under ``folder`` (any depth), decoded as the model's are."""
    from pneumo_core.data.decode import BadImageError, decode_image

    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            out.append(decode_image(path, size, "grayscale", "squash")[0])
        except BadImageError:
            continue
    return np.stack(out)


def one_seed(args, seed: int, in_scope: dict[str, np.ndarray]) -> dict:
    """The detector fitted on one patient split, and its rates."""
    from pneumo_core.data.config import DataConfig
    from pneumo_core.data.dataset import prepare_data
    from results.final.scope_check import fit_and_measure, flag_rate

    data = prepare_data(
        DataConfig(root=str(args.data), image_size=args.image_size, split_seed=seed)
    )
    spec = {"size": args.image_size, "color_mode": "grayscale", "aspect": "squash"}
    detector, section = fit_and_measure(data, spec, None, seed)
    for name, images in in_scope.items():
        section["false_alarm"][name] = flag_rate(detector, images)
    return {"seed": seed, **section}


def summary(rows: list[dict]) -> list[str]:
    """Median rates over seeds, with the Wilson interval of the pooled counts."""
    from pneumo_core.metrics import wilson_interval

    lines = [f"{'what':<60} {'median rate':>11}  pooled 95% interval  (flagged/images)"]
    for group, label in (("false_alarm", "false alarm"), ("detection", "detected")):
        for name in rows[0][group]:
            cells = [r[group][name] for r in rows]
            flagged = sum(c["flagged"] for c in cells)
            images = sum(c["images"] for c in cells)
            low, high = wilson_interval(flagged, images)
            median = statistics.median(c["rate"] for c in cells)
            lines.append(
                f"{label + ': ' + name:<60} {median:>11.3f}  [{low:.3f}, {high:.3f}]"
                f"  ({flagged}/{images})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the dataset the detector is fitted on")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--in-scope", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, help="where pixel_scope.json goes")
    parser.add_argument("--quick", action="store_true", help="32 px, one seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.seeds = 32, [0]
        args.in_scope = args.in_scope or [args.data / "test"]
    in_scope = {str(f): folder_images(f, args.image_size) for f in args.in_scope}
    rows = [one_seed(args, seed, in_scope) for seed in args.seeds]
    print(f"pixel scope detector: {args.data} at {args.image_size} px, seeds {args.seeds}")
    print("\n".join(summary(rows)))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
        (args.out / "pixel_scope.json").write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
