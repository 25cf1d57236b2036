"""What generalizes: the robustness objective, ensembles and TTA, side by side over seeds.

For each seed and each objective (``none``: validation rw_auc as it is; ``mean`` and
``worst``: rw_auc over the robustness suite applied to validation), one search runs with
the recipe of ``search/kermany.yaml`` (same space, budget in trials, scheduler), with every
patient of the external set removed from the data. ``final --ensemble K --tta`` then
retrains its top K configurations and scores, side by side, each member, the ensembles of
3 and of K, and member 1 and the ensemble of K with test-time augmentation, on: the test
split, the external set, and the robustness suite at severity 2 (mean and worst rw_auc).
Medians over the seeds are printed per objective and model; every number goes to a JSON.

The searches run the ``kermany_options`` space (``kermany`` plus histogram equalization,
border crop, label smoothing and mixup). For each option the winner of a search picked
(weight decay included), the winner is retrained once with that option off, same seed,
and scored the same way: the difference is that option's effect, medians over the runs
that picked it.

    python bench/robustness.py ../shared/data/chest_xray_224 \\
        --external ../shared/data/chest_xray_mini --seeds 0 1 2 --trials 12 \\
        --image-size 64 --epochs 4 --objectives none worst   # 6 searches + finals + ablations
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

from bench.quick import QUICK_SPACE as TINY_QUICK_SPACE  # noqa: E402

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

#: Options whose effect is measured by switching them off in the winner: (key, off value).
OPTIONS = (
    ("model.params.equalize", False),
    ("model.params.border_crop", 0.0),
    ("training.label_smoothing", 0.0),
    ("training.mixup", 0.0),
    ("training.weight_decay", 0.0),
)

#: A small CNN space for --quick (builds at 32 px, trains in seconds).
QUICK_SPACE = {
    **TINY_QUICK_SPACE,
    "model.params.equalize": True,
    "training.label_smoothing": {"choice": [0.0, 0.1]},
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
    if not args.quick:
        raw["space"] = args.space
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
    from results.final.stage import FinalOptions
    from search.config import ExperimentConfig
    from search.final_stage import run_final
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
    ablations = ablate(raw["output_dir"], args) if args.ablate else []
    return {
        "name": raw["name"],
        "search_seconds": round(searched, 1),
        "final_seconds": report["seconds"],
        "rows": report["ensemble"]["comparison"],
        "external_images": report.get("external", {}).get("n"),
        "excluded": report["data"].get("external", {}),
        "ablations": ablations,
    }


def ablate(run_dir: str, args) -> list[dict[str, Any]]:
    """The search winner retrained with each option it picked switched off, side by side.

    The winner (the leaderboard's first) is retrained with the seed ``final`` gave it, so
    each row compares with final's row for that trial, scored the same way.
    """
    from pneumo_contracts.run_folder import EXPERIMENT_FILE, LEADERBOARD_FILE
    from pneumo_core.data.external import prepare_external
    from results.board.leaderboard import read_csv_rows, row_params
    from results.final.candidates import ranked_candidates, retrain
    from results.final.ensemble import side_by_side
    from results.final.options import FinalOptions
    from search.config import load_experiment

    run_dir = Path(run_dir)
    record = load_experiment(run_dir / EXPERIMENT_FILE).record()
    winner = ranked_candidates(run_dir, read_csv_rows(run_dir / LEADERBOARD_FILE), 1)[0]
    params = row_params(winner)
    picked = [(k, off) for k, off in OPTIONS if k in params and params[k] not in (off, None)]
    rows: list[dict[str, Any]] = []
    external = None  # the same data config for every variant: decoded once
    for key, off in picked:
        variant = {**winner, key: json.dumps(off)}
        runs = retrain(record, [variant], FinalOptions(), lambda line: print("  " + line))
        run = runs[0]
        if external is None and run.config.data.external_root:
            external = prepare_external(run.config.data, run.data.class_names)
        side = side_by_side(
            [(f"without {key}", run.result.model, run)],
            run.data,
            FinalOptions().target_sensitivity,
            run.config.objective,
            external=external,
            suite_seed=None if args.quick else record.seed,
        )
        rows.append({"option": key, "picked": params[key], **side["comparison"][0]})
    return rows


def option_effects(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per option: median over the runs that picked it of (winner - winner without it).

    The winner's numbers are final's side-by-side row for the same trial.
    """
    deltas: dict[str, list[dict[str, float]]] = {}
    for run in runs:
        for row in run.get("ablations", []):
            member = next(
                (
                    r
                    for r in run["rows"]
                    if r["trial_id"] == row["trial_id"] and not r["model"].endswith("TTA")
                ),
                None,
            )
            if member is None:
                continue
            delta = {
                c: member[c] - row[c]
                for c in COLUMNS
                if member.get(c) is not None and row.get(c) is not None
            }
            deltas.setdefault(row["option"], []).append(delta)
    table = []
    for option, values in deltas.items():
        entry: dict[str, Any] = {"option": option, "runs": len(values)}
        for column in COLUMNS:
            cells = [v[column] for v in values if column in v]
            entry[column] = statistics.median(cells) if cells else None
        table.append(entry)
    return table


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


def print_table(table: list[dict[str, Any]], first: tuple[str, ...], count: str) -> None:
    """Medians, one line per entry: the ``first`` columns, the count, then :data:`COLUMNS`."""
    short = [c.replace("external_", "ext_").replace("_rw_auc", "_rw") for c in COLUMNS]
    widths = (10, 26)
    head = "".join(f"{name:<{w}}" for name, w in zip(first, widths))
    print(head + f"{'n':>3}" + "".join(f"{c:>16}" for c in short))
    for e in table:
        cells = "".join(f"{e[c]:>16.4f}" if e[c] is not None else f"{'-':>16}" for c in COLUMNS)
        lead = "".join(f"{e[name]!s:<{w}}" for name, w in zip(first, widths))
        print(f"{lead}{e[count]:>3}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the dataset folder (chest_xray_224)")
    parser.add_argument("--external", help="external set folder (default: the data itself)")
    parser.add_argument("--external-split", default="test", help="its split folder ('' = all)")
    parser.add_argument("--experiment", default=str(REPO / "search" / "kermany.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--objectives", nargs="+", default=["none", "mean", "worst"])
    parser.add_argument("--space", default="kermany_options", help="the searches' space")
    parser.add_argument(
        "--no-ablate", dest="ablate", action="store_false", help="skip the option ablations"
    )
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
    print_table(table, ("objective", "model"), "seeds")
    effects = option_effects(runs)
    if effects:
        print("\neffect of each option the winners picked (winner - winner without it), medians:")
        print_table(effects, ("option",), "runs")
    result = {"args": vars(args), "runs": runs, "medians": table, "option_effects": effects}
    (out / "robustness.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"every number: {out / 'robustness.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
