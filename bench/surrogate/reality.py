"""Checks the simulation against reality: real searches beside simulated ones (issue 18).

Real: ``pneumo-search run`` of the surrogate's experiment (search/kermany.yaml over the
``kermany_sizes`` space, the shipped searcher and ASHA) on the real data, with ``--workers``
trials at once and a ``--minutes`` time budget, for each of ``--seeds``. Simulated: the
same setting, worker count and budget on the surrogate, over ``--sim-seeds`` seeds. Printed
side by side: the best validation objective at the budget's end and the trials started;
each real seed is placed within the simulated spread (its percentile).

    python bench/surrogate/reality.py ../shared/data/chest_xray_224 \\
        --external ../shared/data/chest_xray_mini --seeds 0 1 2 --minutes 15 --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def real_search(
    data: str, seed: int, minutes: float, workers: int, out: Path, external: str | None
) -> dict[str, Any]:
    """One real search; returns its best objective, trials and wall time."""
    import ray

    from results.board.leaderboard import read_csv_rows
    from search.config import load_experiment
    from search.runner import run_experiment

    name = f"reality-seed{seed}-w{workers}"
    overrides = {
        "name": name,
        "output_dir": str(out / name),
        "space": "kermany_sizes",
        "data": {"root": str(Path(data).resolve())},
        "search": {
            "seed": seed,
            "num_samples": -1,
            "time_budget_s": minutes * 60,
            "max_concurrent_trials": workers,
        },
    }
    if external:  # the external set's patients left out of the data
        overrides["data"].update(external_root=str(Path(external).resolve()))
    config = load_experiment(REPO / "search" / "kermany.yaml", overrides)
    start = time.monotonic()
    try:
        run_experiment(config)
    finally:
        ray.shutdown()
    rows = read_csv_rows(out / name / "leaderboard.csv")
    ranked = [float(r["objective"]) for r in rows if r["rank"]]
    return {
        "seed": seed,
        "best": max(ranked) if ranked else None,
        "trials": len(rows),
        "epochs": sum(int(r["epochs_run"]) for r in rows),
        "seconds": round(time.monotonic() - start, 1),
    }


def simulated(seeds: int, minutes: float, workers: int, curves: str) -> list[dict[str, Any]]:
    """The default setting simulated on the surrogate (best-kind fit), one row per seed."""
    from bench.surrogate import run as sim
    from bench.surrogate.blackbox import load_blackbox
    from bench.surrogate.model import MODEL_KINDS, cross_validate, fit_surrogate

    blackbox = load_blackbox(curves)
    checks = {k: cross_validate(blackbox, k, repeats=1) for k in MODEL_KINDS}
    kind = max(checks, key=lambda k: checks[k]["spearman_final"])
    sim._init(fit_surrogate(blackbox, kind))
    setting = sim.SETTINGS["default"]
    return [sim.run_one(("default", setting, workers, s, minutes * 60)) for s in range(seeds)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the dataset the curves were collected on")
    parser.add_argument("--external", help="as given to collect.py (chest_xray_mini)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sim-seeds", type=int, default=30)
    parser.add_argument(
        "--curves", default=str(REPO / "bench" / "figures" / "surrogate_curves.json")
    )
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_reality"))
    parser.add_argument("--real", help="a reality.json whose real searches to reuse")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.real:
        real = json.loads(Path(args.real).read_text())["real"]
    else:
        real = [
            real_search(args.data, s, args.minutes, args.workers, out, args.external)
            for s in args.seeds
        ]
    sims = simulated(args.sim_seeds, args.minutes, args.workers, args.curves)
    sim_best = np.array([r["best"][-1] if r["best"] else np.nan for r in sims])
    sim_trials = np.array([r["trials"] for r in sims])
    q = lambda a: np.nanquantile(a, [0.05, 0.25, 0.5, 0.75, 0.95])  # noqa: E731
    print(f"{args.workers} workers, {args.minutes:g} minutes; simulated over {len(sims)} seeds")
    print("           best objective                 trials")
    print(f"simulated  5/25/50/75/95%: {' '.join(f'{v:.4f}' for v in q(sim_best))}   "
          f"{' '.join(f'{v:.0f}' for v in q(sim_trials))}")  # fmt: skip
    for row in real:
        pct = 100 * float(np.mean(sim_best <= row["best"])) if row["best"] is not None else None
        trial_pct = 100 * float(np.mean(sim_trials <= row["trials"]))
        print(
            f"real seed {row['seed']}: best {row['best']:.4f} (percentile {pct:.0f} of the "
            f"simulated), {row['trials']} trials (percentile {trial_pct:.0f})"
        )
    result = {"args": vars(args), "real": real, "simulated": sims}
    (out / "reality.json").write_text(json.dumps(result))
    print(f"every number: {out / 'reality.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
