"""The recipe's shift-proxy scores against its search budget (issue 16).

For each seed and each budget, the recipe runs as shipped: the search of
``search/kermany.yaml`` with that time budget, then ``final`` with the recipe's options
(``--ensemble 3 --target-sensitivity 0.95``, plus ``--family-check``), with an external
set whose patients are left out of the data. Each exported model is read off its report:
carved test AUC and specificity, the external set's AUC and specificity (at the
validation threshold), the robustness suite's mean and worst rw_auc, and the worst and
mean rw_auc of the configuration retrained with each acquisition family held out. Printed
per budget: the medians over seeds, and whether each proxy falls as the budget grows
(what issue 16 reported for the public test split).

    python bench/budget_curve.py ../shared/data/chest_xray_224 \\
        --external ../shared/data/chest_xray_mini --minutes 10 20 50 --seeds 0 1 2
    python bench/budget_curve.py ../shared/data/chest_xray_mini --quick   # the test's mode
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.quick import QUICK_SPACE  # noqa: E402

#: The proxies read off each report, in the table's order.
COLUMNS = (
    "test_auc",
    "test_specificity",
    "external_auc",
    "external_specificity",
    "suite_mean_rw_auc",
    "suite_worst_rw_auc",
    "family_worst_rw_auc",
    "family_mean_rw_auc",
)


def proxies(report: dict[str, Any]) -> dict[str, float | None]:
    """The :data:`COLUMNS` of one ``final`` report (None where the report has no such part)."""
    test = report["test"]["metrics"]
    out: dict[str, float | None] = {
        "test_auc": test["auc"]["value"],
        "test_specificity": test["specificity"]["value"],
    }
    external = (report.get("external") or {}).get("metrics")
    out["external_auc"] = external["auc"]["value"] if external else None
    out["external_specificity"] = external["specificity"]["value"] if external else None
    summary = (report.get("robustness") or {}).get("summary") or {}
    out["suite_mean_rw_auc"] = summary.get("mean_rw_auc")
    out["suite_worst_rw_auc"] = summary.get("worst_rw_auc")
    held = (report.get("families") or {}).get("held_out") or {}
    out["family_worst_rw_auc"] = held.get("worst_rw_auc")
    out["family_mean_rw_auc"] = held.get("mean_rw_auc")
    return out


def recipe_run(args, seed: int, minutes: float, out: Path) -> dict[str, Any]:
    """One search of the recipe and its final stage; returns the proxies and timings."""
    import ray
    import yaml

    from pneumo_core.configuration import from_dict
    from results.final_options import FinalOptions
    from results.leaderboard import read_csv_rows
    from search.config import ExperimentConfig
    from search.final_stage import run_final
    from search.runner import run_experiment

    raw = yaml.safe_load((REPO / "search" / "kermany.yaml").read_text())
    name = f"budget-{minutes:g}min-seed{seed}"
    raw["name"] = name
    raw["output_dir"] = str(out / name)
    raw["data"]["root"] = str(Path(args.data).resolve())
    raw["data"]["external_root"] = str(Path(args.external or args.data).resolve())
    raw["data"]["external_split"] = args.external_split
    raw["search"].update(seed=seed, time_budget_s=minutes * 60, num_samples=-1)
    if args.quick:  # two trials, whatever the load of the machine (a budget could end first)
        raw["search"].update(time_budget_s=0, num_samples=2)
        raw["space"] = dict(QUICK_SPACE)
        raw["data"]["image_size"] = 32
        raw["data"].pop("test_fraction", None)
        raw["training"]["epochs"] = 2
    run_dir = Path(raw["output_dir"])
    log = lambda line: print("    " + line, flush=True)  # noqa: E731
    start = time.perf_counter()
    if not (args.reuse and (run_dir / "leaderboard.csv").is_file()):
        shutil.rmtree(run_dir, ignore_errors=True)  # an earlier bench run's folder
        try:
            run_experiment(from_dict(ExperimentConfig, raw))
        finally:
            ray.shutdown()
    searched = time.perf_counter() - start
    rows = read_csv_rows(run_dir / "leaderboard.csv")
    options = FinalOptions(
        ensemble=0 if args.quick else 3,
        target_sensitivity=0.95,
        family_check=not args.quick,
        robustness=not args.quick,
        n_boot=50 if args.quick else 1000,
    )
    outcome = run_final(run_dir, options, log=log)
    return {
        "seed": seed,
        "minutes": minutes,
        "trials": len(rows),
        "best_val": max((float(r["objective"]) for r in rows if r["rank"]), default=None),
        "search_s": round(searched, 1),
        "final_s": outcome.report.get("seconds"),
        **proxies(outcome.report),
    }


def medians(rows: list[dict[str, Any]], minutes: list[float]) -> dict[str, dict[str, Any]]:
    """Per budget, the median of each column over seeds."""
    table = {}
    for m in minutes:
        mine = [r for r in rows if r["minutes"] == m]
        entry: dict[str, Any] = {"seeds": len(mine)}
        for column in ("best_val", "trials", *COLUMNS):
            values = [r[column] for r in mine if r.get(column) is not None]
            entry[column] = statistics.median(values) if values else None
        table[f"{m:g}"] = entry
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the dataset folder (chest_xray_224)")
    parser.add_argument("--external", help="the external set's dataset (chest_xray_mini)")
    parser.add_argument("--external-split", default="test")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_budget"))
    parser.add_argument(
        "--reuse", action="store_true", help="reuse finished searches (else OUT's are redone)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny searches, no ensemble")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.seeds, args.external_split = [0.5], [0], "val"

    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    out = Path(args.out).resolve()
    rows = []
    for seed in args.seeds:
        for minutes in args.minutes:
            print(f"seed {seed}, {minutes:g} minutes", flush=True)
            rows.append(recipe_run(args, seed, minutes, out))
    table = medians(rows, args.minutes)
    short = [c.replace("_rw_auc", "").replace("external", "ext") for c in COLUMNS]
    short = ["best_val", "trials", *short]
    print(f"\n{args.data}: seeds {args.seeds}, medians per budget")
    print(f"{'minutes':<9}" + "".join(f"{c:>17}" for c in short))
    for minutes, entry in table.items():
        cells = "".join(
            f"{entry[c]:>17.4f}" if isinstance(entry[c], float) else f"{entry[c] or '-':>17}"
            for c in ("best_val", "trials", *COLUMNS)
        )
        print(f"{minutes:<9}{cells}")
    first, last = table[f"{args.minutes[0]:g}"], table[f"{args.minutes[-1]:g}"]
    falling = [
        c for c in COLUMNS if first[c] is not None and last[c] is not None and last[c] < first[c]
    ]
    print("falling from the shortest to the longest budget: " + (", ".join(falling) or "none"))
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "rows": rows, "medians": table, "falling": falling}
    (out / "budget_curve.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"every number: {out / 'budget_curve.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
