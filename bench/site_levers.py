"""Levers measured on a test-site sample, beside the carved proxies (issue 36).

The best configuration of a finished search (its leaderboard's first) is retrained with
each lever switched on, for every seed, at the recipe's final resolution, with every
patient of the site sample kept out of training. Each model is scored:

- on carved validation (its own threshold for sensitivity 0.95) and carved test;
- on the **site sample** (``--site``, e.g. ``../shared/data/chest_xray_shift_dev``): AUC,
  sensitivity, specificity and accuracy at the validation threshold, specificity at
  sensitivity 0.95 with the site's own threshold (what ranking alone allows), and the
  specificity of each normal family (``IM-``, ``NORMAL2-IM-``).

The site sample chooses nothing: it is only measured. Per lever, the medians over seeds;
then the seeds' mean probability per lever (one averaged model per lever) with a
bootstrap interval over the site's images, and the paired bootstrap interval of each
lever minus the baseline (the same resampled images for both). Runs go seed by seed, so a
stop leaves every lever with the same seeds; ``site_levers.json`` is rewritten after each
run and a rerun skips what it holds.

    python bench/site_levers.py bench/figures/budget_guard_seed1/50min \\
        --site ../shared/data/chest_xray_shift_dev --seeds 0 1 2 --out bench/figures/site_levers
    python bench/site_levers.py ../shared/data/chest_xray_mini --quick   # the test's mode
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Lever name -> dotted configuration values it sets on the best configuration.
LEVERS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "crop": {"augment.crop_scale": 0.25},
    "intensity": {"augment.gamma": 0.4, "augment.brightness": 0.2, "augment.contrast": 0.3},
    "bands": {"augment.band_erase": 0.15},
    "strong": {
        "augment.crop_scale": 0.25,
        "augment.gamma": 0.4,
        "augment.brightness": 0.2,
        "augment.contrast": 0.3,
        "augment.degrade": 0.3,
        "augment.band_erase": 0.15,
    },
    "v2_1.0": {"model.name": "mobilenet_v2", "model.params.alpha": 1.0},
    "v1_0.75": {"model.params.alpha": 0.75},
    "no_class_weight": {"training.imbalance": "none"},
}
#: The columns of the per-lever table (medians over seeds).
COLUMNS = (
    "epoch_s",
    "test_auc",
    "test_specificity",
    "site_auc",
    "site_sensitivity",
    "site_specificity",
    "site_accuracy",
    "site_spec_at_95",
    "site_spec_IM",
    "site_spec_NORMAL2",
)
TARGET = 0.95


def site_scores(y: np.ndarray, p: np.ndarray, names: tuple[str, ...], threshold: float) -> dict:
    """The site sample's scores at the validation threshold and at its own threshold."""
    from pneumo_core.metrics import compute_metrics, threshold_for_sensitivity

    own = threshold_for_sensitivity(y, p, TARGET)
    m = compute_metrics(y, p, threshold=threshold)
    normals = np.array([not n.startswith("PNEUMONIA") for n in names])
    base = np.array([Path(n).name for n in names])
    out = {
        "site_auc": m["auc"],
        "site_sensitivity": m["sensitivity"],
        "site_specificity": m["specificity"],
        "site_accuracy": m["accuracy"],
        "site_spec_at_95": float(np.mean(p[y == 0] < own)),
    }
    for family, prefix in (("IM", "IM-"), ("NORMAL2", "NORMAL2-IM-")):
        mask = normals & np.char.startswith(base.astype(str), prefix)
        out[f"site_spec_{family}"] = float(np.mean(p[mask] < threshold)) if mask.any() else None
    return out


def one_run(record, row, lever: str, seed: int, site, args, log) -> dict[str, Any] | None:
    """Retrains the configuration with one lever and seed; its scores and site probs."""
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import compute_metrics, threshold_for_sensitivity
    from results.final.candidates import retrain
    from results.final.options import FinalOptions

    variant = {**row, **{k: json.dumps(v) for k, v in LEVERS[lever].items()}}
    options = FinalOptions(image_size=args.image_size or None)
    (run,) = retrain(dataclasses.replace(record, seed=seed), [variant], options, log)
    if run.result.model is None or not math.isfinite(run.value):
        log(f"{lever} seed {seed}: unusable ({run.result.status}), left out")
        return None
    model = run.result.model
    val_x, val_y = run.data.arrays("val")
    test_x, test_y = run.data.arrays("test")
    threshold = threshold_for_sensitivity(val_y, predict_batches(model, val_x), TARGET)
    test = compute_metrics(test_y, predict_batches(model, test_x), threshold=threshold)
    site_p = predict_batches(model, site.images)
    epochs = max(run.result.epochs_run, 1)
    return {
        "lever": lever,
        "seed": seed,
        "trial_id": row["trial_id"],
        "threshold": threshold,
        "epoch_s": run.result.seconds / epochs,
        "params": run.result.param_count,
        "test_auc": test["auc"],
        "test_specificity": test["specificity"],
        **site_scores(site.labels, site_p, site.relpaths, threshold),
        "site_probs": [round(float(v), 6) for v in site_p],
    }


def paired_intervals(rows: list[dict], site, levers: list[str], seed: int) -> dict[str, Any]:
    """Each lever's seed-mean probabilities on the site, and minus the baseline's, with
    percentile intervals from one stratified bootstrap over the site's images."""
    from pneumo_core.metrics import roc_auc

    y = np.asarray(site.labels)
    mean = {}
    for lever in levers:
        probs = [r["site_probs"] for r in rows if r["lever"] == lever]
        if probs:
            mean[lever] = np.mean(np.asarray(probs), axis=0)

    def spec95(yy, pp):
        ranked = np.sort(pp[yy == 1])[::-1]
        cut = ranked[max(math.ceil(TARGET * ranked.size - 1e-9), 1) - 1]
        return float(np.mean(pp[yy == 0] < cut))

    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    draws = [np.concatenate([rng.choice(m, m.size) for m in by_class]) for _ in range(1000)]
    out: dict[str, Any] = {}
    for lever, p in mean.items():
        entry: dict[str, Any] = {"auc": roc_auc(y, p), "spec_at_95": spec95(y, p)}
        for name, fn in (("auc", roc_auc), ("spec_at_95", spec95)):
            values = np.array([fn(y[i], p[i]) for i in draws])
            entry[f"{name}_ci"] = [float(np.quantile(values, q)) for q in (0.025, 0.975)]
            if lever != "baseline" and "baseline" in mean:
                b = mean["baseline"]
                diff = values - np.array([fn(y[i], b[i]) for i in draws])
                entry[f"{name}_minus_baseline"] = fn(y, p) - fn(y, b)
                entry[f"{name}_minus_baseline_ci"] = [
                    float(np.quantile(diff, q)) for q in (0.025, 0.975)
                ]
        out[lever] = entry
    return out


def calibration_gain(rows: list[dict], labels: np.ndarray, levers: list[str]) -> dict:
    """Per lever: what site calibration (``pneumo-search calibrate``) would give on the
    seed-mean model, cross-fitted on the site (fitted on one half, scored on the other,
    20 random halvings), beside the seed-mean model at its validation thresholds."""
    from results.report.evaluation import calibration
    from results.serving.calibrate import cross_fitted

    y = np.asarray(labels)
    out = {}
    for lever in levers:
        mine = [r for r in rows if r["lever"] == lever]
        if not mine:
            continue
        p = np.mean(np.asarray([r["site_probs"] for r in mine]), axis=0)
        threshold = float(np.median([r["threshold"] for r in mine]))
        calls = p >= threshold
        out[lever] = {
            "before": {
                "sensitivity": float(np.mean(calls[y == 1])),
                "specificity": float(np.mean(~calls[y == 0])),
                "accuracy": float(np.mean(calls == (y == 1))),
                "ece": calibration(y, p, seed=0, n_boot=50)["ece"],
            },
            "cross_fitted": cross_fitted(y, p, TARGET, seed=0),
        }
    return out


def print_calibration(gain: dict[str, dict]) -> None:
    """The seed-mean model before and after cross-fitted site calibration."""
    print("\nsite calibration, cross-fitted on the site (Platt; median [2.5%, 97.5%] of 40 halves)")
    for lever, entry in gain.items():
        b, c = entry["before"], entry["cross_fitted"]["platt"]
        cells = "  ".join(
            f"{k[:4]} {b[k]:.3f} -> {c[k]['median']:.3f} [{c[k]['low']:.3f}, {c[k]['high']:.3f}]"
            for k in ("sensitivity", "specificity", "accuracy", "ece")
        )
        print(f"{lever:<16} {cells}")


def print_tables(table: dict[str, dict], paired: dict[str, dict]) -> None:
    """The medians per lever, then the seed-mean model's site scores with intervals."""
    short = [c.replace("site_", "s_").replace("specificity", "spec") for c in COLUMNS]
    print(f"{'lever':<16}{'n':>3}" + "".join(f"{c:>14}" for c in short))
    for lever, entry in table.items():
        cells = "".join(
            f"{entry[c]:>14.4f}" if entry.get(c) is not None else f"{'-':>14}" for c in COLUMNS
        )
        print(f"{lever:<16}{entry['seeds']:>3}{cells}")
    print("\nseed-mean model on the site: AUC [95%], spec at sens 0.95 [95%], minus baseline")
    for lever, e in paired.items():
        line = (
            f"{lever:<16} AUC {e['auc']:.4f} [{e['auc_ci'][0]:.4f}, {e['auc_ci'][1]:.4f}]"
            f"  spec@95 {e['spec_at_95']:.3f} [{e['spec_at_95_ci'][0]:.3f}, "
            f"{e['spec_at_95_ci'][1]:.3f}]"
        )
        if "auc_minus_baseline" in e:
            a, s = e["auc_minus_baseline_ci"], e["spec_at_95_minus_baseline_ci"]
            line += (
                f"  dAUC {e['auc_minus_baseline']:+.4f} [{a[0]:+.4f}, {a[1]:+.4f}]"
                f"  dspec {e['spec_at_95_minus_baseline']:+.3f} [{s[0]:+.3f}, {s[1]:+.3f}]"
            )
        print(line)


#: Carved proxies and site scores whose rank agreement over the runs is reported.
PROXIES = ("test_auc", "test_specificity")
SITE_SCORES = ("site_auc", "site_spec_at_95", "site_specificity")


def proxy_site_correlations(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Spearman's rho between each carved proxy and each site score over every run (lever
    x seed): does ranking runs on carved test rank them as the site would?"""
    from scipy.stats import spearmanr

    out: dict[str, dict[str, Any]] = {}
    for proxy in PROXIES:
        for score in SITE_SCORES:
            pairs = [(r[proxy], r[score]) for r in rows if r.get(proxy) is not None]
            if len(pairs) < 4:
                continue
            rho, p_value = spearmanr(*zip(*pairs))
            out[f"{proxy} ~ {score}"] = {"rho": float(rho), "p": float(p_value), "n": len(pairs)}
    return out


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each column over the rows."""
    out: dict[str, Any] = {"seeds": len(rows)}
    for column in COLUMNS:
        values = [r[column] for r in rows if r.get(column) is not None]
        out[column] = statistics.median(values) if values else None
    return out


def load_board(board: Path, site: Path):
    """The board's search record (site patients kept out of training) and best row."""
    from pneumo_contracts.run_folder import EXPERIMENT_FILE, LEADERBOARD_FILE
    from pneumo_core.data.external import prepare_external
    from results.board.leaderboard import read_csv_rows
    from results.final.candidates import ranked_candidates
    from search.config import load_experiment

    record = load_experiment(board / EXPERIMENT_FILE).record()
    data = dataclasses.replace(
        record.base.data, external_root=str(site), external_split="", exclude_external_patients=True
    )
    record = dataclasses.replace(record, base=dataclasses.replace(record.base, data=data))
    (row,) = ranked_candidates(board, read_csv_rows(board / LEADERBOARD_FILE), 1)
    from pneumo_core.data import prepare_data

    class_names = prepare_data(data).class_names
    return record, row, prepare_external(data, class_names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("board", help="a finished search (with --quick: a dataset folder)")
    parser.add_argument("--site", help="the labelled site sample (NORMAL/, PNEUMONIA/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--image-size", type=int, default=160, help="retrain px (0: the board's)")
    parser.add_argument("--out", help="where site_levers.json goes (default: the board)")
    parser.add_argument("--quick", action="store_true", help="a tiny search, 2 levers, 1 seed")
    args = parser.parse_args(argv)

    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    start = time.perf_counter()
    board = Path(args.board).resolve()
    if args.quick:
        from bench.levers import quick_search

        args.site = args.site or str(board / "test")
        board = quick_search(board, Path(args.out or REPO / "runs" / "bench_site_levers"))
        args.seeds, args.levers, args.image_size = [0], ["baseline", "strong"], 0
    if not args.site:
        parser.error("--site is required")
    out = Path(args.out) if args.out else board
    out.mkdir(parents=True, exist_ok=True)
    target = out / "site_levers.json"
    rows = json.loads(target.read_text())["rows"] if target.exists() and not args.quick else []
    log = lambda line: print("  " + line, flush=True)  # noqa: E731
    record, row, site = load_board(board, Path(args.site).resolve())
    for seed in args.seeds:  # seed by seed: a stop leaves the levers with equal seeds
        for lever in args.levers:
            if any(r["lever"] == lever and r["seed"] == seed for r in rows):
                continue
            print(f"lever {lever} seed {seed}", flush=True)
            result = one_run(record, row, lever, seed, site, args, log)
            if result is not None:
                rows.append(result)
                short = {k: v for k, v in result.items() if k != "site_probs"}
                print(f"  {json.dumps(short, default=str)}", flush=True)
            target.write_text(json.dumps({"args": vars(args), "rows": rows}, default=str))
    table = {lv: medians([r for r in rows if r["lever"] == lv]) for lv in args.levers}
    paired = paired_intervals(rows, site, args.levers, seed=0)
    gain = calibration_gain(rows, site.labels, args.levers)
    print(f"\n{board}: site {args.site}, seeds {args.seeds}, medians over seeds")
    print_tables(table, paired)
    print_calibration(gain)
    correlations = proxy_site_correlations(rows)
    print("\ncarved proxy vs site over the runs (Spearman)")
    for name, c in correlations.items():
        print(f"  {name:<40} rho {c['rho']:+.2f} (p {c['p']:.2f}, {c['n']} runs)")
    result = {
        "args": vars(args),
        "seconds": round(time.perf_counter() - start, 1),
        "site_count": len(site.labels),
        "medians": table,
        "seed_mean": paired,
        "site_calibration": gain,
        "proxy_site_spearman": correlations,
        "rows": rows,
    }
    target.write_text(json.dumps(result, indent=1, default=str))
    print(f"every number: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
