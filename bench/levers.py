"""What each training lever does to the shift proxies, side by side over seeds (issue 16).

The best configuration of a finished search (its leaderboard's first) is retrained with
each lever switched on, for every seed, and scored like ``bench/proxies.py`` scores a
model: carved test, the external set, the robustness suite (severity 2, on test) and,
with ``--family``, the configuration retrained once per acquisition family held out.
Medians over the seeds are printed per lever, then each lever minus the baseline.

Levers (dotted keys set on the configuration; ``--levers`` picks them):

- ``baseline``: the configuration as the search found it;
- ``ema``: weight averaging, ``training.ema: 0.99``;
- ``cosine_long``: a cosine schedule over twice the epochs;
- ``geometric``: stronger geometric augmentation (zoom 0.15, translation 0.1,
  rotation 10 degrees: crop and shift are what broke specificity in the suite);
- ``resolution``: retrained at ``--resolution`` px instead of the search's.

    python bench/levers.py runs/bench_proxies/proxies-seed0 --seeds 0 1 2 --family
    python bench/levers.py ../shared/data/chest_xray_mini --quick   # the test's mode
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Lever name -> dotted configuration values it sets.
LEVERS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "ema": {"training.ema": 0.99},
    "cosine_long": {"training.lr_schedule": "cosine"},  # and twice the epochs
    "geometric": {"augment.zoom": 0.15, "augment.translation": 0.1, "augment.rotation_deg": 10.0},
    "resolution": {},  # --resolution px
}
#: The columns compared.
COLUMNS = (
    "val_rw_auc",
    "test_rw_auc",
    "test_specificity",
    "external_rw_auc",
    "external_specificity",
    "suite_mean_rw_auc",
    "suite_worst_rw_auc",
    "family_worst_rw_auc",
    "family_mean_rw_auc",
)


def lever_runs(run_dir: Path, lever: str, args, log) -> list[dict[str, Any]]:
    """The best configuration retrained with one lever, one row of scores per seed."""
    from pneumo_contracts.run_folder import EXPERIMENT_FILE, LEADERBOARD_FILE
    from pneumo_core.data.external import prepare_external
    from results.board.leaderboard import read_csv_rows
    from results.final.candidates import ranked_candidates, retrain
    from results.final.ensemble import side_by_side
    from results.final.family_check import held_out_families
    from results.final.options import FinalOptions
    from search.config import load_experiment

    record = load_experiment(run_dir / EXPERIMENT_FILE).record()
    (row,) = ranked_candidates(run_dir, read_csv_rows(run_dir / LEADERBOARD_FILE), 1)
    variant = {**row, **{k: json.dumps(v) for k, v in LEVERS[lever].items()}}
    epochs = record.base.training.epochs * (2 if lever == "cosine_long" else 1)
    options = FinalOptions(
        epochs=epochs, image_size=args.resolution if lever == "resolution" else None
    )
    shifted = record.seed  # the suite's shifts stay the same for every lever and seed
    rows = []
    external = None
    for seed in args.seeds:  # one retrain per call: retrain keeps one model per trial
        (run,) = retrain(dataclasses.replace(record, seed=seed), [variant], options, log)
        if run.result.model is None or not math.isfinite(run.value):
            log(f"{lever} seed {run.seed}: unusable ({run.result.status}), left out")
            continue
        if external is None and run.config.data.external_root:
            external = prepare_external(run.config.data, run.data.class_names)
        side = side_by_side(
            [(lever, run.result.model, run)],
            run.data,
            0.95,
            run.config.objective,
            external=external,
            suite_seed=None if args.quick or args.no_suite else shifted,
        )["comparison"][0]
        if args.family:  # the same check as final --family-check
            held = held_out_families(run, log)
            side["family_worst_rw_auc"] = held["worst_rw_auc"]
            side["family_mean_rw_auc"] = held["mean_rw_auc"]
        rows.append({"lever": lever, "trial_id": row["trial_id"], **side})
        run.result.model = None
    return rows


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each column over the rows (None where no row has it)."""
    out: dict[str, Any] = {"seeds": len(rows)}
    for column in COLUMNS:
        values = [r[column] for r in rows if r.get(column) is not None]
        out[column] = statistics.median(values) if values else None
    return out


def print_table(table: dict[str, dict[str, Any]], title: str, signed: bool = False) -> None:
    """One line per lever: the seeds, then :data:`COLUMNS`."""
    short = [c.replace("external_", "ext_").replace("_rw_auc", "_rw") for c in COLUMNS]
    print(title)
    print(f"{'lever':<14}{'n':>3}" + "".join(f"{c:>17}" for c in short))
    for lever, entry in table.items():
        cells = "".join(
            (f"{entry[c]:>+17.4f}" if signed else f"{entry[c]:>17.4f}")
            if entry.get(c) is not None
            else f"{'-':>17}"
            for c in COLUMNS
        )
        print(f"{lever:<14}{entry['seeds']:>3}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a finished search (with --quick: a dataset folder)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="consecutive")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--resolution", type=int, default=128, help="the resolution lever's px")
    parser.add_argument("--family", action="store_true", help="also the family-out scores")
    parser.add_argument(
        "--no-suite", action="store_true", help="skip the robustness suite (its shifts are slow)"
    )
    parser.add_argument("--out", help="where levers.json goes (default: the run folder)")
    parser.add_argument("--quick", action="store_true", help="a tiny search, 2 levers, 2 seeds")
    args = parser.parse_args(argv)

    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    start = time.perf_counter()
    run_dir = Path(args.run_dir).resolve()
    if args.quick:
        run_dir = quick_search(run_dir, Path(args.out or REPO / "runs" / "bench_levers"))
        args.seeds, args.levers, args.family = [0, 1], ["baseline", "ema"], False
    log = lambda line: print("  " + line, flush=True)  # noqa: E731
    out = Path(args.out) if args.out else run_dir
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for lever in args.levers:
        print(f"lever {lever}: {len(args.seeds)} seed(s)", flush=True)
        rows += lever_runs(run_dir, lever, args, log)
        partial = {"args": vars(args), "partial": True, "rows": rows}  # a stop loses no lever
        (out / "levers.json").write_text(json.dumps(partial, indent=2, default=str))
    table = {lever: medians([r for r in rows if r["lever"] == lever]) for lever in args.levers}
    deltas = {}
    if "baseline" in table:
        for lever, entry in table.items():
            if lever != "baseline":
                deltas[lever] = {
                    "seeds": entry["seeds"],
                    **{
                        c: entry[c] - table["baseline"][c]
                        if entry[c] is not None and table["baseline"][c] is not None
                        else None
                        for c in COLUMNS
                    },
                }
    print(f"\n{run_dir}: seeds {args.seeds}, medians")
    print_table(table, "each lever:")
    if deltas:
        print_table(deltas, "\neach lever minus the baseline:", signed=True)
    result = {
        "args": vars(args),
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
        "medians": table,
        "deltas": deltas,
    }
    (out / "levers.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"every number: {out / 'levers.json'}")
    return 0


def quick_search(data: Path, out: Path) -> Path:
    """A 2-trial search on a tiny space at 32 px, its own val patients as external set."""
    import ray
    import yaml

    from bench.quick import QUICK_SPACE
    from pneumo_core.configuration import from_dict
    from search.config import ExperimentConfig
    from search.runner import run_experiment

    raw = yaml.safe_load((REPO / "search" / "kermany.yaml").read_text())
    raw["name"] = "levers-quick"
    raw["output_dir"] = str(out.resolve() / raw["name"])
    raw["space"] = {k: v for k, v in QUICK_SPACE.items() if not k.startswith("training.")}
    raw["data"].update(root=str(data), image_size=32, external_root=str(data))
    raw["data"]["external_split"] = "val"
    raw["data"].pop("test_fraction", None)
    raw["training"]["epochs"] = 1
    raw["search"].update(num_samples=2, time_budget_s=0, max_concurrent_trials=1)
    try:
        run_experiment(from_dict(ExperimentConfig, raw))
    finally:
        ray.shutdown()
    return Path(raw["output_dir"])


if __name__ == "__main__":
    sys.exit(main())
