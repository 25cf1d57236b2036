"""Which selection signal ranks models the way a shift does: the proxy rank correlations.

One search runs the recipe of ``search/kermany.yaml`` (its space and scheduler; trial
budget, resolution and epochs from the flags) with every patient of the external set
removed from the data. Its top K distinct configurations are retrained (one seed each)
and every retrained model is scored on each proxy:

- ``search_val``: the trial's validation objective during the search (what the
  leaderboard ranks by);
- ``val_rw_auc``: the retrained model on carved validation; ``test_rw_auc`` on carved test;
- ``external_rw_auc`` / ``external_specificity``: on the external set, at the model's own
  validation threshold (sensitivity >= 0.95);
- ``suite_mean_rw_auc`` / ``suite_worst_rw_auc``: the robustness suite at severity 2 on test;
- ``family_worst_rw_auc`` / ``family_mean_rw_auc``: the configuration retrained once per
  acquisition family held out (:mod:`pneumo_core.train.family_out`), scored on that family.

Then Spearman's rank correlation of each proxy with each shift score (the external and
family-out ones) over the K models is printed; every number goes to ``proxies.json``.

    python bench/proxies.py ../shared/data/chest_xray_224 \\
        --external ../shared/data/chest_xray_mini --trials 30 --top 10 \\
        --image-size 64 --epochs 4 --seed 0
    python bench/proxies.py ../shared/data/chest_xray_224 \\
        --board bench/figures/budget_guard_seed1/50min --top 10 --seed 1
    python bench/proxies.py ../shared/data/chest_xray_mini --quick   # the test's mode

``--board`` scores a search that already ran (a run folder or a kept board with its
``experiment.yaml`` and ``leaderboard.csv``) instead of searching: the recipe's own boards,
at their own resolution and epochs, with the external patients already kept out of them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.quick import QUICK_SPACE  # noqa: E402

#: The proxies (the signals one could select by), in the table's row order.
PROXIES = (
    "search_val",
    "val_rw_auc",
    "test_rw_auc",
    "family_worst_rw_auc",
    "family_mean_rw_auc",
    "external_rw_auc",
    "suite_mean_rw_auc",
    "suite_worst_rw_auc",
)
#: The shift scores proxies are judged against (the table's columns).
TARGETS = ("external_rw_auc", "external_specificity", "family_worst_rw_auc", "family_mean_rw_auc")


def experiment_for(base: dict[str, Any], args, out: Path) -> dict[str, Any]:
    """The recipe with this run's seed, trial budget, resolution and external set."""
    raw = json.loads(json.dumps(base))  # a deep copy
    raw["name"] = f"proxies-seed{args.seed}"
    raw["output_dir"] = str(out / raw["name"])
    raw["data"]["root"] = str(Path(args.data).resolve())
    raw["data"]["external_root"] = str(Path(args.external).resolve())
    raw["data"]["external_split"] = args.external_split
    raw["search"].update(seed=args.seed, num_samples=args.trials, time_budget_s=0)
    raw["data"]["image_size"] = args.image_size
    if args.space and not args.quick:
        raw["space"] = args.space
    raw["training"]["epochs"] = args.epochs
    return raw


def read_board(run_dir: Path, args) -> dict[str, Any]:
    """A finished search's experiment; ``args`` takes its trial count, size and external set."""
    from pneumo_contracts.run_folder import EXPERIMENT_FILE, LEADERBOARD_FILE
    from results.board.leaderboard import read_csv_rows
    from search.config import load_experiment

    raw = load_experiment(run_dir / EXPERIMENT_FILE).record().experiment
    args.trials = len(read_csv_rows(run_dir / LEADERBOARD_FILE))
    args.image_size = raw["data"]["image_size"]
    args.epochs = raw["training"]["epochs"]
    args.external = raw["data"].get("external_root") or args.external
    args.external_split = raw["data"].get("external_split", args.external_split)
    return raw


def score_models(run_dir: Path, args, log) -> list[dict[str, Any]]:
    """Retrains the top K, scores each on every proxy; one row per model, leaderboard order."""
    from pneumo_contracts.run_folder import EXPERIMENT_FILE, LEADERBOARD_FILE
    from pneumo_core.data.external import prepare_external
    from results.board.leaderboard import read_csv_rows
    from results.final.candidates import ranked_candidates, retrain
    from results.final.ensemble import side_by_side
    from results.final.family_check import held_out_families
    from results.final.options import FinalOptions
    from search.config import load_experiment

    record = load_experiment(run_dir / EXPERIMENT_FILE).record()
    rows = ranked_candidates(run_dir, read_csv_rows(run_dir / LEADERBOARD_FILE), args.top)
    options = FinalOptions(top=len(rows), ensemble=max(2, len(rows)))
    runs = retrain(record, rows, options, log)
    data = runs[0].data
    external = prepare_external(runs[0].config.data, data.class_names)
    scored = []
    for row, run in zip(rows, runs):
        if run.result.model is None or not math.isfinite(run.value):
            log(f"trial {row['trial_id']}: retrain unusable ({run.result.status}), left out")
            continue
        side = side_by_side(
            [(row["trial_id"], run.result.model, run)],
            data,
            0.95,
            run.config.objective,
            external=external,
            suite_seed=None if args.quick else args.seed,
        )["comparison"][0]
        held = held_out_families(run, log)  # the same check as final --family-check
        per_family = {f["family"]: f["rw_auc"] for f in held["folds"]}
        scored.append(
            {
                **side,
                "search_val": float(row["objective"]),
                "family_worst_rw_auc": held["worst_rw_auc"],
                "family_mean_rw_auc": held["mean_rw_auc"],
                "families": per_family,
                "model_name": run.config.model.name,
            }
        )
        run.result.model = None
    return scored


def correlations(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spearman's rho (and its p-value) of each proxy with each target, over the models."""
    from scipy.stats import spearmanr

    table = []
    for proxy in PROXIES:
        entry: dict[str, Any] = {"proxy": proxy}
        for target in TARGETS:
            pairs = [
                (m[proxy], m[target])
                for m in models
                if m.get(proxy) is not None and m.get(target) is not None
            ]
            if proxy == target or len(pairs) < 3:
                entry[target] = None
                continue
            rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
            entry[target] = None if math.isnan(rho) else float(rho)
            entry[f"{target}_p"] = None if math.isnan(p) else float(p)
        table.append(entry)
    return table


def print_tables(models: list[dict[str, Any]], table: list[dict[str, Any]]) -> None:
    """The models' proxy scores, then the correlation table."""
    short = [p.replace("_rw_auc", "").replace("external", "ext") for p in PROXIES]
    print(f"{'trial':<12}" + "".join(f"{c:>14}" for c in short) + f"{'ext_spec':>10}")
    for m in models:
        cells = "".join(f"{m[p]:>14.4f}" if m.get(p) is not None else f"{'-':>14}" for p in PROXIES)
        print(f"{m['trial_id']:<12}{cells}{m.get('external_specificity', math.nan):>10.4f}")
    print(f"\nSpearman rho over {len(models)} models (proxy rows, shift-score columns):")
    print(f"{'proxy':<22}" + "".join(f"{t:>24}" for t in TARGETS))
    for e in table:
        cells = "".join(f"{e[t]:>24.2f}" if e.get(t) is not None else f"{'-':>24}" for t in TARGETS)
        print(f"{e['proxy']:<22}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the dataset folder (chest_xray_224)")
    parser.add_argument("--external", help="external set folder (default: the data itself)")
    parser.add_argument("--external-split", default="test", help="its split folder ('' = all)")
    parser.add_argument("--experiment", default=str(REPO / "search" / "kermany.yaml"))
    parser.add_argument("--seed", type=int, default=0, help="the search's seed")
    parser.add_argument("--space", help="a registered space instead of the experiment's")
    parser.add_argument("--trials", type=int, default=30, help="trials of the search")
    parser.add_argument("--top", type=int, default=10, help="configurations retrained")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_proxies"))
    parser.add_argument("--reuse", action="store_true", help="score an existing search")
    parser.add_argument("--board", help="score this finished search's folder, no search")
    parser.add_argument("--quick", action="store_true", help="tiny search, 2 models, no suite")
    args = parser.parse_args(argv)

    import ray
    import yaml

    from pneumo_core.configuration import from_dict
    from pneumo_core.runtime import import_tensorflow
    from search.config import ExperimentConfig
    from search.runner import run_experiment

    import_tensorflow()
    base = yaml.safe_load(Path(args.experiment).read_text())
    if args.quick:
        base["space"] = dict(QUICK_SPACE)
        base["data"].pop("test_fraction", None)
        args.trials, args.top, args.image_size, args.epochs = 2, 2, 32, 1
        args.external_split = "val"  # the data's own val patients become the external set
    args.external = args.external or args.data
    out = Path(args.out).resolve()
    raw = experiment_for(base, args, out)
    run_dir = Path(raw["output_dir"])
    if args.reuse and (run_dir / "leaderboard.csv").is_file():
        args.board = str(run_dir)  # this run's finished search: scored like any board
    if args.board:
        run_dir = Path(args.board).resolve()
        raw = read_board(run_dir, args)
    start = time.perf_counter()
    if not args.board:
        print(f"search {raw['name']}: {args.trials} trials", flush=True)
        try:
            run_experiment(from_dict(ExperimentConfig, raw))
        finally:
            ray.shutdown()
    searched = time.perf_counter() - start
    models = score_models(run_dir, args, lambda line: print("  " + line, flush=True))
    table = correlations(models)
    print(
        f"\n{args.data}: {args.trials} trials at {args.image_size} px, {args.epochs} epochs, "
        f"space {raw['space'] if isinstance(raw['space'], str) else 'custom'}, "
        f"seed {args.seed}; top {args.top} retrained; external {args.external} "
        f"({args.external_split or 'all'})"
    )
    print_tables(models, table)
    result = {
        "args": vars(args),
        "search_seconds": round(searched, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "models": models,
        "correlations": table,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxies.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"every number: {out / 'proxies.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
