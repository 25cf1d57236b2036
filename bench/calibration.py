"""Calibration as a lever: temperature and Platt scaling on kept finals (issue 16).

Each argument is a final stage's folder (``RUN_DIR/final``) with its
``val_predictions.csv`` and ``test_predictions.csv``. Both calibrations are fitted on the
validation predictions, as ``final``'s report does (:func:`results.final.assemble.
temperature_scaling`), and the test split's ECE, Brier and log loss are printed before and
after each, with the medians over the folders. Neither changes AUC or the decisions at the
validation-chosen threshold (both keep the images' order), so the shift proxies do not move
by construction: only the probabilities do.

    python bench/calibration.py runs/bench_clean/*/final
    python bench/calibration.py --quick   # the test's mode: two synthetic folders
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: The test split's calibration scores, each before and after both calibrations.
COLUMNS = ("ece", "brier", "log_loss")


def read_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of one predictions CSV (``label``, ``probability``)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(r["label"]) for r in rows])
    return labels, np.array([float(r["probability"]) for r in rows])


def measure(folder: Path, seed: int = 0) -> dict[str, Any]:
    """Test ECE, Brier and log loss before and after each calibration fitted on validation."""
    from results.final.assemble import temperature_scaling
    from results.report.evaluation import calibration

    val_labels, val_probs = read_split(folder / "val_predictions.csv")
    test_labels, test_probs = read_split(folder / "test_predictions.csv")
    before = calibration(test_labels, test_probs, seed=seed)
    scaling = temperature_scaling(val_labels, val_probs, test_labels, test_probs, seed, before)
    platt = scaling["platt"]
    row: dict[str, Any] = {
        "folder": str(folder),
        "temperature": scaling["temperature"],
        "platt_slope": platt["slope"],
        "platt_intercept": platt["intercept"],
    }
    for column in COLUMNS:
        row[f"{column}_before"] = scaling["test"][column]["before"]
        row[f"{column}_temperature"] = scaling["test"][column]["after"]
        row[f"{column}_platt"] = platt["test"][column]["after"]
    return row


def synthetic_folders(root: Path, count: int = 2) -> list[Path]:
    """Folders of predictions from a model trained as if the classes were balanced.

    Three positives to one negative, but logits symmetric around 0: the probabilities
    miss the log prior odds, the shift class weights make.
    """
    rng = np.random.default_rng(0)
    folders = []
    for k in range(count):
        folder = root / f"final{k}"
        folder.mkdir(parents=True)
        for split in ("val", "test"):
            labels = (rng.random(400) < 0.75).astype(int)
            logits = (labels * 2 - 1) * 1.5 + rng.normal(0, 1.0, labels.size)
            probs = 1 / (1 + np.exp(-logits))
            with (folder / f"{split}_predictions.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["label", "probability"])
                writer.writerows(zip(labels, probs))
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", help="final folders (RUN_DIR/final)")
    parser.add_argument("--out", help="where the JSON of every number goes")
    parser.add_argument("--quick", action="store_true", help="two synthetic folders")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folders = synthetic_folders(Path(scratch)) if args.quick else map(Path, args.folders)
        rows = [measure(folder) for folder in folders]
    if not rows:
        parser.error("no final folder given")
    names = [f"{c}_{when}" for c in COLUMNS for when in ("before", "temperature", "platt")]
    print(f"{'folder':<48}{'T':>7}" + "".join(f"{n:>21}" for n in names))
    for row in rows:
        cells = "".join(f"{row[n]:>21.4f}" for n in names)
        print(f"{Path(row['folder']).parent.name[-48:]:<48}{row['temperature']:>7.3f}{cells}")
    table = {n: statistics.median(r[n] for r in rows) for n in names}
    print(
        f"{'median over ' + str(len(rows)):<48}{'':>7}"
        + "".join(f"{table[n]:>21.4f}" for n in names)
    )
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "medians": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
