"""The surrogate benchmark: fit, check, and compare searchers at 1 to 64 workers (issue 18).

1. **Fit**: every surrogate kind of :mod:`bench.surrogate.model` is cross-validated on the
   collected curves (configurations left out); the best by rank correlation of predicted
   and real final score is kept.
2. **Simulate** (:mod:`bench.surrogate.simulator`): each setting of :data:`SETTINGS`, at
   each worker count, over ``--seeds`` seeds, for a simulated wall-time budget of
   ``--budget`` full trials per worker (a full trial: the median configuration's set-up and
   every epoch). Reported per setting, medians with interquartile ranges over seeds: the
   best validation objective at 1/8, 1/4, 1/2, 3/4 and all of the budget (as the
   leaderboard shows it; ``true@1``: the noise-free surrogate score of the final leader,
   what the winner is really worth), and the simulated time to reach random search's
   median final best.
3. **Targets** at 16 workers: the default reaches random's median final best within 1/4
   of the budget, and is ahead of Hyperband and of TPE without constant liar at every
   budget fraction from 1/4 on.

    python bench/surrogate/run.py --seeds 30 --workers 1 4 16 64
    python bench/surrogate/run.py --quick   # the test's mode: a few seeds, small budget
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.surrogate.blackbox import load_blackbox  # noqa: E402
from bench.surrogate.model import MODEL_KINDS, cross_validate, fit_surrogate  # noqa: E402

CURVES = REPO / "bench" / "figures" / "surrogate_curves.json"
FRACTIONS = (0.125, 0.25, 0.5, 0.75, 1.0)

#: Setting name -> how it searches. ``tune``: the product's parts with these experiment
#: overrides (``search`` and ``scheduler`` sections); ``optuna``: a plain study with
#: ``sampler`` and Optuna's HyperbandPruner. ``default`` is search/kermany.yaml as shipped.
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {"tune": {}},
    "random": {"tune": {"search": {"sampler": "random"}, "scheduler": {"type": "none"}}},
    "random_asha": {"tune": {"search": {"sampler": "random"}}},
    "tpe_asha": {"tune": {"search": {"sampler": "tpe", "constant_liar": False}}},
    "tpe_asha_liar": {"tune": {"search": {"sampler": "tpe", "constant_liar": True}}},
    "hyperband": {"optuna": "random"},
    "bohb": {"optuna": "tpe"},
    # the default, warm-started from another seed's default search of the same size
    "default_warm": {"tune": {}, "warm": True},
    # variants of the default (--settings picks them): start-up trials, ASHA's shape
    "startup_5": {"tune": {"search": {"startup_trials": 5}}},
    "startup_20": {"tune": {"search": {"startup_trials": 20}}},
    "startup_40": {"tune": {"search": {"startup_trials": 40}}},
    "asha_rf2": {"tune": {"scheduler": {"reduction_factor": 2}}},
    "asha_rf4": {"tune": {"scheduler": {"reduction_factor": 4}}},
    "asha_grace2": {"tune": {"scheduler": {"grace_period": 2}}},
}
#: The settings compared unless --settings says otherwise.
MAIN_SETTINGS = (
    "default",
    "random",
    "random_asha",
    "tpe_asha",
    "tpe_asha_liar",
    "hyperband",
    "bohb",
    "default_warm",
)


def experiment(overrides: dict[str, Any] | None = None):
    """The experiment the curves come from (search/kermany.yaml over ``kermany_sizes``),
    with ``overrides`` (nested), and its space."""
    from search.config import load_experiment
    from search.experiment_space import experiment_space

    merged: dict[str, Any] = {"space": "kermany_sizes"}
    for section, values in (overrides or {}).items():
        merged[section] = values
    config = load_experiment(REPO / "search" / "kermany.yaml", merged).with_absolute_paths()
    return config, experiment_space(config)


def make_policy(setting: dict[str, Any], seed: int, workers: int):
    """The searcher of one setting (an entry of :data:`SETTINGS`), seeded."""
    import optuna

    from bench.surrogate.simulator import OptunaPolicy, TunePolicy
    from search.runner import search_parts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    overrides: dict[str, Any] = {"search": {"seed": seed, "max_concurrent_trials": workers}}
    for section, values in setting.get("tune", {}).items():
        overrides[section] = {**overrides.get(section, {}), **values}
    config, space = experiment(overrides)
    metric = f"best_val_{config.objective.key}"
    if "optuna" in setting:
        from search.samplers import SamplerOptions, make_sampler

        options = SamplerOptions(constant_liar=True)  # the pending trials' fair share
        study = optuna.create_study(
            direction="maximize" if config.objective.mode == "max" else "minimize",
            sampler=make_sampler(setting["optuna"], seed, options),
            pruner=optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=config.epochs, reduction_factor=3
            ),
        )
        policy = OptunaPolicy(study, space.define_by_run, metric)
    else:
        searcher, scheduler = search_parts(config, space, None)
        policy = TunePolicy(searcher, scheduler, space.names())
    return policy, config, space, metric


_SURROGATE = None


def _init(surrogate) -> None:
    global _SURROGATE
    _SURROGATE = surrogate


def run_one(job: tuple[str, dict[str, Any], int, int, float]) -> dict[str, Any]:
    """One simulated search (a pool worker's job): ``(name, setting, workers, seed,
    budget_s)``."""
    from bench.surrogate.simulator import simulate

    name, setting, workers, seed, budget_s = job
    start = time.perf_counter()
    policy, config, space, metric = make_policy(setting, seed, workers)

    def search(policy, seed: int):
        return simulate(
            policy,
            _SURROGATE,
            workers=workers,
            budget_s=budget_s,
            epochs=config.epochs,
            patience=config.training.early_stopping_patience,
            metric=metric,
            seed=seed,
        )

    if setting.get("warm"):  # the earlier run: the same search with another seed
        import optuna

        from search.warm_start import WarmStart, seed_study

        earlier, *_ = make_policy({"tune": setting["tune"]}, seed + 10_000, workers)
        search(earlier, seed + 10_000)
        ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        trials = earlier.study.get_trials(deepcopy=False, states=ended)
        warm = WarmStart("simulated", config.objective.key, config.objective.mode, trials)
        seed_study(
            policy.study,
            warm,
            objective=config.objective.key,
            distributions=space.distributions(),
            top=config.search.warm_start_top,
        )
    trace = search(policy, seed)
    return {
        "setting": name,
        "workers": workers,
        "seed": seed,
        "budget_s": budget_s,
        "times": trace.times,
        "best": trace.best,
        "true_best": trace.true_best,
        "trials": trace.trials,
        "epochs": trace.epochs,
        "stopped_early": trace.stopped_early,
        "cpu_s": time.perf_counter() - start,
    }


def best_at(run: dict[str, Any], t: float, key: str = "best") -> float:
    """The best value a run's trace shows at simulated time ``t``."""
    k = int(np.searchsorted(run["times"], t, side="right"))
    return run[key][k - 1] if k else math.nan


def time_to(run: dict[str, Any], value: float) -> float:
    """Simulated seconds until a run's best reached ``value`` (inf: never)."""
    for t, best in zip(run["times"], run["best"]):
        if best >= value:
            return t
    return math.inf


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range; an infinite value (never reached) counts as the
    largest, and a quantile that falls on one is infinite."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    big = 1e300
    q = np.quantile(np.minimum(np.array(finite, dtype=float), big), [0.5, 0.25, 0.75])
    return tuple(math.inf if v >= 1e200 else float(v) for v in q)  # touched a "never"


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per worker count and setting: medians and IQRs over seeds (see the module doc)."""
    table: dict[str, Any] = {}
    for workers in sorted({r["workers"] for r in runs}):
        at = [r for r in runs if r["workers"] == workers]
        budget = at[0]["budget_s"]
        random_final = [best_at(r, budget) for r in at if r["setting"] == "random"]
        target = statistics.median(random_final) if random_final else math.nan
        rows = {}
        for name in dict.fromkeys(r["setting"] for r in at):
            mine = [r for r in at if r["setting"] == name]
            row: dict[str, Any] = {"seeds": len(mine), "budget_s": budget}
            for f in FRACTIONS:
                row[f"best@{f:g}"] = quantiles([best_at(r, f * budget) for r in mine])
                row[f"true@{f:g}"] = quantiles([best_at(r, f * budget, "true_best") for r in mine])
            reach = [time_to(r, target) / budget for r in mine]
            row["to_random_median"] = quantiles(reach)
            row["reached_random_median"] = sum(math.isfinite(x) for x in reach)
            row["trials"] = quantiles([r["trials"] for r in mine])
            row["epochs"] = quantiles([r["epochs"] for r in mine])
            rows[name] = row
        table[str(workers)] = {"random_median_final": target, "settings": rows}
    return table


def _cell(q: tuple[float, float, float], digits: int = 4) -> str:
    median, low, high = q
    if not math.isfinite(median):
        return "never" if median == math.inf else "-"
    high_text = f"{high:.{digits}f}" if math.isfinite(high) else "never"
    return f"{median:.{digits}f} [{low:.{digits}f}, {high_text}]"


def print_tables(table: dict[str, Any]) -> None:
    """The summary as text tables, one per worker count."""
    for workers, entry in table.items():
        print(
            f"\n{workers} worker(s): random's median final best {entry['random_median_final']:.4f}"
        )
        head = ["setting", "trials", *(f"best@{f:g}" for f in FRACTIONS), "true@1"]
        print(" | ".join([*head, "to random's (frac.)"]))
        for name, row in entry["settings"].items():
            cells = [name, f"{row['trials'][0]:.0f}"]
            cells += [_cell(row[f"best@{f:g}"]) for f in FRACTIONS]
            cells.append(_cell(row["true@1"]))
            cells.append(
                _cell(row["to_random_median"], 2)
                + f" ({row['reached_random_median']}/{row['seeds']})"
            )
            print(" | ".join(cells))


def paired(runs: list[dict[str, Any]], base: str = "default") -> dict[str, Any]:
    """Per worker count, each setting against ``base`` seed by seed (the settings share
    seeds, so their random start-up trials are the same): the median difference of the
    final leader's true score (``true@1``) and of the best reported (``best@1``), with
    wins, ties and losses."""
    table: dict[str, Any] = {}
    for workers in sorted({r["workers"] for r in runs}):
        by = {(r["setting"], r["seed"]): r for r in runs if r["workers"] == workers}
        rows = {}
        for name in dict.fromkeys(setting for setting, _ in by):
            if name == base:
                continue
            row = {}
            for key, label in (("true_best", "true@1"), ("best", "best@1")):
                diffs = np.array(
                    [
                        best_at(run, run["budget_s"], key)
                        - best_at(by[(base, seed)], run["budget_s"], key)
                        for (setting, seed), run in by.items()
                        if setting == name and (base, seed) in by
                    ]
                )
                diffs = diffs[~np.isnan(diffs)]
                if len(diffs):
                    wins, ties = int((diffs > 1e-9).sum()), int((abs(diffs) <= 1e-9).sum())
                    losses = int((diffs < -1e-9).sum())
                    row[label] = (float(np.median(diffs)), wins, ties, losses)
            rows[name] = row
        table[str(workers)] = rows
    return table


def print_paired(table: dict[str, Any], base: str = "default") -> None:
    """The paired table: median difference (wins/ties/losses) against ``base``."""
    for workers, rows in table.items():
        print(f"\n{workers} worker(s), paired with {base}: median difference (wins/ties/losses)")
        for name, row in rows.items():
            cells = [f"{k} {m:+.4f} ({w}/{t}/{lo})" for k, (m, w, t, lo) in row.items()]
            print(f"  {name:<14} " + "  ".join(cells))


def check_targets(table: dict[str, Any], workers: int = 16) -> list[str]:
    """The issue's targets at ``workers``, each with met / not met."""
    entry = table.get(str(workers))
    if not entry or "default" not in entry["settings"]:
        return [f"no {workers}-worker results"]
    rows = entry["settings"]
    lines = []
    reach = rows["default"]["to_random_median"][0]
    lines.append(
        f"default reaches random's median final best at {reach:.2f} of the budget "
        f"(target <= 0.25): {'met' if reach <= 0.25 else 'NOT met'}"
    )
    for rival in ("hyperband", "tpe_asha"):
        if rival not in rows:
            continue
        behind = [
            f"{f:g}"
            for f in FRACTIONS
            if f >= 0.25 and not rows["default"][f"best@{f:g}"][0] > rows[rival][f"best@{f:g}"][0]
        ]
        lines.append(
            f"default ahead of {rival} at every fraction >= 1/4: "
            + ("met" if not behind else f"NOT met (not ahead at {', '.join(behind)})")
        )
    return lines


#: Issue 16's shift proxies stored with each collected curve (bench/surrogate/collect.py).
SHIFT_SCORES = (
    "test_rw_auc",
    "test_specificity",
    "external_rw_auc",
    "external_specificity",
    "suite_mean_rw_auc",
    "suite_worst_rw_auc",
)


def proxy_table(blackbox) -> dict[str, Any]:
    """Across the collected configurations: Spearman's rho of the validation objective (the
    best epoch's, what a search ranks by) with each shift score, over all of them and over
    the best quarter by validation (where a search's choice is made)."""
    from scipy.stats import spearmanr

    rows = [
        (max(v for v in c.column(f"val_{blackbox.metric}") if math.isfinite(v)), c.scores)
        for c in blackbox.curves
        if c.scores and any(math.isfinite(v) for v in c.column(f"val_{blackbox.metric}"))
    ]
    rows.sort(key=lambda r: r[0], reverse=True)
    table: dict[str, Any] = {"configurations": len(rows)}
    for subset, chosen in (("all", rows), ("top_quarter", rows[: max(3, len(rows) // 4)])):
        entry = {}
        for score in SHIFT_SCORES:
            pairs = [(v, s[score]) for v, s in chosen if math.isfinite(s.get(score, math.nan))]
            rho = spearmanr(*zip(*pairs)).statistic if len(pairs) >= 3 else math.nan
            entry[score] = None if math.isnan(rho) else float(rho)
        table[subset] = {"n": len(chosen), "spearman": entry}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", default=str(CURVES))
    parser.add_argument("--seeds", type=int, default=30, help="seeds per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument(
        "--settings", nargs="+", default=list(MAIN_SETTINGS), choices=list(SETTINGS)
    )
    parser.add_argument("--budget", type=float, default=6.0, help="full trials per worker")
    parser.add_argument("--kind", choices=MODEL_KINDS, help="surrogate kind (default: best CV)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_surrogate" / "surrogate.json"))
    parser.add_argument("--quick", action="store_true", help="2 seeds, 1 and 4 workers, 3 settings")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.workers, args.budget = 2, [1, 4], 2.0
        args.settings = ["default", "random", "hyperband", "default_warm"]
        args.kind = args.kind or "random_forest"
    start = time.perf_counter()
    blackbox = load_blackbox(args.curves)
    if blackbox is None or len(blackbox.curves) < 10:
        print(f"{args.curves}: too few curves to fit a surrogate", file=sys.stderr)
        return 2
    kinds = [args.kind] if args.kind else list(MODEL_KINDS)
    checks = {k: cross_validate(blackbox, k, repeats=1 if args.quick else 3) for k in kinds}
    print(f"surrogate, held-out ({len(blackbox.curves)} curves, 5-fold):")
    for kind, check in checks.items():
        print(
            f"  {kind:<18} rank corr. final score {check['spearman_final']:.3f}  "
            f"MAE {check['mae_final']:.4f}  rank corr. cost {check['spearman_cost']:.3f}"
        )
    kind = max(checks, key=lambda k: checks[k]["spearman_final"])
    proxies = proxy_table(blackbox)
    print(f"validation objective vs shift scores over {proxies['configurations']} configurations:")
    for subset in ("all", "top_quarter"):
        rhos = proxies[subset]["spearman"]
        print(
            f"  {subset} ({proxies[subset]['n']}): "
            + ", ".join(f"{k} {v:+.2f}" for k, v in rhos.items() if v is not None)
        )
    surrogate = fit_surrogate(blackbox, kind)
    full_trial = float(
        np.median([sum(c.column("seconds")) + c.setup_s for c in blackbox.curves if c.epochs])
    )
    print(f"kept: {kind}; a median full trial takes {full_trial:.0f} s")
    jobs = [
        (name, SETTINGS[name], workers, seed, args.budget * full_trial)
        for workers in args.workers
        for name in args.settings
        for seed in range(args.seeds)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.processes, initializer=_init, initargs=(surrogate,)) as pool:
        runs = pool.map(run_one, jobs, chunksize=1)
    table = summarize(runs)
    print_tables(table)
    pairs = paired(runs) if "default" in args.settings else {}
    print_paired(pairs)
    lines = check_targets(table)
    print("\ntargets at 16 workers:" if "16" in table else "")
    for line in lines:
        print("  " + line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "args": vars(args),
        "surrogate": checks,
        "kind": kind,
        "proxies": proxies,
        "full_trial_s": full_trial,
        "table": table,
        "paired": pairs,
        "targets": lines,
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    out.write_text(json.dumps(result))
    print(f"\n{len(runs)} simulated searches in {result['seconds']:.0f} s; every number: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
