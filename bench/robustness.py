"""What generalizes: the robustness objective, ensembles and TTA, side by side over seeds.

For each seed and each objective (``none``: validation rw_auc as it is; ``mean`` and
``worst``: rw_auc over the robustness suite applied to validation), one search runs with
the recipe of ``search/kermany.yaml`` (same space, budget in trials, scheduler), with every
patient of the external set removed from the data. ``final --ensemble K --tta`` then
retrains its top K configurations and scores, side by side, each member, the ensembles of
3 and of K, and member 1 and the ensemble of K with test-time augmentation, on: the test
split, the external set, and the robustness suite at severity 2 (mean and worst rw_auc).
Medians over the seeds are printed per objective and model; every number goes to a JSON.

    python bench/robustness.py ../shared/data/chest_xray_224 \\
        --external ../shared/data/chest_xray_mini --seeds 0 1 2 --trials 12 \\
        --image-size 64 --epochs 4          # about 2 hours on 2 cores (9 searches + finals)
    python bench/robustness.py ../shared/data/chest_xray_mini --quick   # the test's mode
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: The columns summarized (from final's side-by-side rows).
COLUMNS = (
    "test_rw_auc",
    "test_specificity",
    "external_rw_auc",
    "external_sensitivity",
    "external_specificity",
    "suite_mean_rw_auc",
    "suite_worst_rw_auc",
)

#: A small CNN space for --quick (builds at 32 px, trains in seconds).
QUICK_SPACE = {
    "model.name": "cnn",
    "model.params.num_blocks": 2,
    "model.params.filters": {"choice": [4, 8]},
    "model.params.head": "global_avg",
    "model.params.dense_units": [8],
    "training.learning_rate": {"float": [1.0e-3, 1.0e-2], "log": True},
}


def experiment_for(base: dict[str, Any], args, seed: int, objective: str, out: Path) -> dict:
    """The recipe with this run's seed, objective, trial budget and external set."""
    raw = json.loads(json.dumps(base))  # a deep copy
    raw["name"] = f"{objective}-seed{seed}"
    raw["output_dir"] = str(out / raw["name"])
    raw["data"]["root"] = str(Path(args.data).resolve())
    raw["data"]["external_root"] = str(Path(args.external).resolve())
    raw["data"]["external_split"] = args.external_split
    raw["objective"]["robustness"] = objective
    raw["search"].update(seed=seed, num_samples=args.trials, time_budget_s=0)
    if args.image_size:
        raw["data"]["image_size"] = args.image_size
    if args.epochs:
        raw["training"]["epochs"] = args.epochs
    return raw


def run_one(raw: dict[str, Any], args) -> dict[str, Any]:
    """One search and its final stage; returns the side-by-side rows and timings."""
    import ray

    from pneumo_core.configuration import from_dict
    from results.final import FinalOptions, run_final
    from search.config import ExperimentConfig
    from search.runner import run_experiment

    start = time.perf_counter()
    try:
        run_experiment(from_dict(ExperimentConfig, raw))
    finally:
        ray.shutdown()
    searched = time.perf_counter() - start
    options = FinalOptions(
        ensemble=args.ensemble, tta=True, n_boot=200, gallery=0, robustness=not args.quick
    )
    outcome = run_final(raw["output_dir"], options, log=lambda line: print("  " + line))
    report = outcome.report
    return {
        "name": raw["name"],
        "search_seconds": round(searched, 1),
        "final_seconds": report["seconds"],
        "rows": report["ensemble"]["comparison"],
        "external_images": report.get("external", {}).get("n"),
        "excluded": report["data"].get("external", {}),
    }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over seeds of each column, per objective and model."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for row in run["rows"]:
            groups.setdefault((run["objective"], row["model"]), []).append(row)
    table = []
    for (objective, model), rows in groups.items():
        entry: dict[str, Any] = {"objective": objective, "model": model, "seeds": len(rows)}
        for column in COLUMNS:
            values = [r[column] for r in rows if r.get(column) is not None]
            entry[column] = statistics.median(values) if values else None
        table.append(entry)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    """The medians, one line per objective and model."""
    short = [c.replace("external_", "ext_").replace("_rw_auc", "_rw") for c in COLUMNS]
    print(f"{'objective':<10}{'model':<22}{'n':>3}" + "".join(f"{c:>16}" for c in short))
    for e in table:
        cells = "".join(f"{e[c]:>16.4f}" if e[c] is not None else f"{'-':>16}" for c in COLUMNS)
        print(f"{e['objective']:<10}{e['model']:<22}{e['seeds']:>3}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the dataset folder (chest_xray_224)")
    parser.add_argument("--external", help="external set folder (default: the data itself)")
    parser.add_argument("--external-split", default="test", help="its split folder ('' = all)")
    parser.add_argument("--experiment", default=str(REPO / "search" / "kermany.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--objectives", nargs="+", default=["none", "mean", "worst"])
    parser.add_argument("--trials", type=int, default=16, help="trials per search")
    parser.add_argument("--ensemble", type=int, default=5, help="K of final --ensemble")
    parser.add_argument("--image-size", type=int, help="default: the experiment's")
    parser.add_argument("--epochs", type=int, help="default: the experiment's")
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_robustness"))
    parser.add_argument("--quick", action="store_true", help="1 seed, objective worst, tiny runs")
    args = parser.parse_args(argv)

    import yaml

    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    base = yaml.safe_load(Path(args.experiment).read_text())
    if args.quick:
        base["space"] = QUICK_SPACE
        base["search"]["max_concurrent_trials"] = 1
        base["data"].pop("test_fraction", None)
        args.seeds, args.objectives, args.trials, args.ensemble = [0], ["worst"], 2, 2
        args.image_size, args.epochs = 32, 1
        args.external_split = "val"  # the data's own val patients become the external set
    args.external = args.external or args.data
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        for objective in args.objectives:
            raw = experiment_for(base, args, seed, objective, out)
            print(f"search {raw['name']}: {args.trials} trials", flush=True)
            run = run_one(raw, args)
            runs.append({"seed": seed, "objective": objective, **run})
    table = summarize(runs)
    print(
        f"\n{args.data}: {len(args.seeds)} seed(s), {args.trials} trials per search, final "
        f"--ensemble {args.ensemble} --tta; external: {args.external} "
        f"({args.external_split or 'all'}), medians over seeds"
    )
    print_table(table)
    result = {"args": vars(args), "runs": runs, "medians": table}
    (out / "robustness.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"every number: {out / 'robustness.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
