"""The recipe's shift-proxy scores against its search budget (issue 16).

For each seed and each budget, the recipe runs as shipped: the search of
``search/kermany.yaml`` with that time budget, then ``final`` with the recipe's options
(its ``final`` section: ensemble 3, target sensitivity 0.95, 160 px; plus
``--family-check``),
with an external set whose patients are left out of the data; the curves in
bench/RESULTS.md predate ``--image-size 160`` (``--final-image-size 0`` repeats them).
Each exported model is read off its report: carved test AUC and specificity, the
external set's AUC and specificity (at the validation threshold), the robustness suite's
mean and worst rw_auc, and the worst and mean rw_auc of the configuration retrained with
each acquisition family held out. Printed per budget: the medians over seeds, and whether
each proxy falls as the budget grows (what issue 16 reported for the public test split).

With ``--prefix``, each seed searches once, for the longest budget, and each shorter
budget is that search as it stood at its minute: the leaderboard rebuilt from the epochs
each trial had reported by then (:func:`prefix_board`). ASHA and the sampler only ever
decide on what has been reported, so up to that minute the long search made the moves a
short one would have made (but for timing); it saves the shorter searches' time (a third of it for
10/20/50 minutes). Each prefix still gets its own ``final``.

    python bench/budget_curve.py ../shared/data/chest_xray_224 \\
        --external ../shared/data/chest_xray_mini --minutes 10 20 50 --seeds 0 1 2
    python bench/budget_curve.py ../shared/data/chest_xray_224 --prefix \\
        --external ../shared/data/chest_xray_mini --minutes 10 20 50 --seeds 0
    python bench/budget_curve.py ../shared/data/chest_xray_mini --quick   # the test's mode
"""

from __future__ import annotations

import argparse
import dataclasses
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


def recipe_search(args, seed: int, minutes: float, out: Path) -> tuple[Path, float]:
    """One search of the recipe with a budget of ``minutes``; returns its folder and seconds."""
    import ray
    import yaml

    from pneumo_core.configuration import from_dict
    from search.config import ExperimentConfig
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
    start = time.perf_counter()
    if not (args.reuse and (run_dir / "leaderboard.csv").is_file()):
        shutil.rmtree(run_dir, ignore_errors=True)  # an earlier bench run's folder
        try:
            run_experiment(from_dict(ExperimentConfig, raw))
        finally:
            ray.shutdown()
    return run_dir, time.perf_counter() - start


def epoch_records(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each trial's per-epoch results (Ray Tune's ``result.json`` lines), by trial id."""
    records: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(run_dir.glob("*/result.json")):
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                if "epoch" in result and "timestamp" in result:  # a retried epoch: the last
                    records.setdefault(str(result["trial_id"]), {})[result["epoch"]] = result
    return {trial: list(epochs.values()) for trial, epochs in records.items()}


def prefix_board(run_dir: Path, minutes: float) -> list[dict[str, Any]]:
    """The leaderboard of the search in ``run_dir`` as it stood ``minutes`` after it began.

    The search began when its first trial did (each first result's ``timestamp`` less its
    ``time_total_s``). A trial keeps the epochs it had reported by the cut; one with none
    drops out, one still running is recorded as a time-budget stop (as the search's own
    budget would have recorded it), and the rows are ranked and tie-marked afresh.

    Args:
        run_dir: A finished search's folder (its ``leaderboard.csv`` and trial folders).
        minutes: Where to cut, in minutes after the search began.

    Returns:
        The cut leaderboard's rows, best first.
    """
    from results.board.leaderboard import TrialRecord, leaderboard_rows, read_csv_rows, row_params
    from search.config import load_experiment

    objective = load_experiment(run_dir / "experiment.yaml").objective
    history = epoch_records(run_dir)
    firsts = [min(rows, key=lambda r: r["epoch"]) for rows in history.values()]
    began = min(r["timestamp"] - r["time_total_s"] for r in firsts)
    cut = began + minutes * 60
    records = []
    for row in read_csv_rows(run_dir / "leaderboard.csv"):
        epochs = sorted(history.get(row["trial_id"], []), key=lambda r: r["epoch"])
        kept = [r for r in epochs if r["timestamp"] <= cut]
        if not kept:
            continue
        whole = len(kept) == len(epochs)
        records.append(
            TrialRecord(
                trial_id=row["trial_id"],
                params=row_params(row),
                status=row["status"] if whole else "stopped_early",
                stop_reason=row["stop_reason"] if whole else "time_budget",
                history=kept,
                param_count=kept[-1].get("param_count"),
                wall_time_s=float(kept[-1]["time_total_s"]),
            )
        )
    return leaderboard_rows(records, objective.key, objective.mode)


def write_prefix(run_dir: Path, minutes: float) -> Path:
    """A run folder beside ``run_dir`` holding its search cut at ``minutes`` (for ``final``)."""
    from results.board.leaderboard import write_csv_atomic

    folder = run_dir.with_name(f"{run_dir.name}-at{minutes:g}min")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in ("experiment.yaml", "data_summary.json"):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, folder / name)
    write_csv_atomic(folder / "leaderboard.csv", prefix_board(run_dir, minutes))
    return folder


def recipe_final(args, run_dir: Path) -> dict[str, Any]:
    """``final`` with the recipe's options on a search; returns its proxies and timings."""
    from results.board.leaderboard import read_csv_rows
    from search.final_stage import final_options, run_final

    rows = read_csv_rows(run_dir / "leaderboard.csv")
    changes: dict[str, Any] = {"family_check": args.family_check and not args.quick}
    if args.quick:
        changes.update(ensemble=0, robustness=False, n_boot=50, image_size=None)
    elif args.final_image_size is not None:
        changes["image_size"] = args.final_image_size or None
    # the recipe's options: the final section of search/kermany.yaml, kept in the run
    options = dataclasses.replace(final_options(run_dir), **changes)
    outcome = run_final(run_dir, options, log=lambda line: print("    " + line, flush=True))
    return {
        "trials": len(rows),
        "best_val": max((float(r["objective"]) for r in rows if r["rank"]), default=None),
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


def write_result(out: Path, args, rows: list[dict[str, Any]], extra: dict | None = None) -> None:
    """Writes ``budget_curve.json`` (after each final, so a stopped run keeps its rows)."""
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "rows": rows, **(extra or {})}
    (out / "budget_curve.json").write_text(json.dumps(result, indent=2, default=str))


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
    parser.add_argument(
        "--prefix", action="store_true", help="one search per seed; shorter budgets cut from it"
    )
    parser.add_argument(
        "--no-family-check",
        dest="family_check",
        action="store_false",
        help="skip final's family-out retrainings (4 per final)",
    )
    parser.add_argument(
        "--final-image-size",
        type=int,
        help="final's --image-size (default: the recipe's, 160; 0: the search's own, as the "
        "curve in bench/RESULTS.md was measured)",
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
        longest = max(args.minutes)
        searched: dict[float, tuple[Path, float]] = {}
        if args.prefix:
            print(f"seed {seed}: one search of {longest:g} minutes", flush=True)
            searched[longest] = recipe_search(args, seed, longest, out)
        for minutes in args.minutes:
            print(f"seed {seed}, {minutes:g} minutes", flush=True)
            if args.prefix:
                run_dir, seconds = searched[longest]
                if minutes != longest:
                    run_dir, seconds = write_prefix(run_dir, minutes), minutes * 60
            else:
                run_dir, seconds = recipe_search(args, seed, minutes, out)
            row = {"seed": seed, "minutes": minutes, "search_s": round(seconds, 1)}
            rows.append({**row, **recipe_final(args, run_dir)})
            write_result(out, args, rows)
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
    # the budgets may be given in any order (the extremes first, so a stopped run has both)
    first, last = table[f"{min(args.minutes):g}"], table[f"{max(args.minutes):g}"]
    falling = [
        c for c in COLUMNS if first[c] is not None and last[c] is not None and last[c] < first[c]
    ]
    print("falling from the shortest to the longest budget: " + (", ".join(falling) or "none"))
    write_result(out, args, rows, {"medians": table, "falling": falling})
    print(f"every number: {out / 'budget_curve.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
