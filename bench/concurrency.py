"""Trials per hour with 1 and with 2 concurrent single-CPU trials, side by side in one run.

The same search (the same fixed configuration, N trials, 1 CPU each, ASHA off) runs twice
on one local Ray with 2 CPUs: first with ``max_concurrent_trials: 1``, then with 2. Each
search's clock runs from the first trial's start to the last trial's end (Optuna's
timestamps), so Ray start-up is outside both; the decoded-image cache is built before
either starts. ``--repeats R`` measures the pair R times and prints the median ratio.

    python bench/concurrency.py                 # chest_xray_mini, 128 px, 4 trials of 3 epochs
    python bench/concurrency.py --size 64 --trials 8 --repeats 3   # the recorded measurement
    python bench/concurrency.py --quick         # 32 px, 2 trials of 1 epoch
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def experiment(
    root: str, out: Path, size: int, epochs: int, trials: int, concurrent: int, reuse: bool
):
    from pneumo_core.configuration import from_dict
    from search.config import ExperimentConfig

    return from_dict(
        ExperimentConfig,
        {
            "name": out.name,
            "data": {"root": root, "image_size": size, "cache_dir": str(out.parent / "cache")},
            # one fixed configuration: every trial does the same work
            "space": {"model.name": "cnn", "model.params.preset": "seed_3conv"},
            "training": {"epochs": epochs, "batch_size": 32, "early_stopping_patience": 0},
            "search": {
                "num_samples": trials,
                "max_concurrent_trials": concurrent,
                "seed": 0,
                "reuse_workers": reuse,
            },
            "resources": {"cpu": 1},
            "scheduler": {"type": "none"},
            "output_dir": str(out),
        },
    )


def search_seconds(out: Path) -> tuple[float, int]:
    """First trial start to last trial end, and the most trials that ran at once.

    Both come from the run's Optuna study (each trial's start and end timestamps).
    """
    import optuna

    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'optuna.db'}")
    starts = [t.datetime_start for t in study.trials]
    ends = [t.datetime_complete for t in study.trials]
    if not ends or None in ends:
        raise RuntimeError(f"{out}: a trial did not finish")
    # sweep the starts (+1) and ends (-1) in time order; an end sorts before a start
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return (max(ends) - min(starts)).total_seconds(), most


def run_search(args: argparse.Namespace, out: Path, concurrent: int) -> float:
    """Runs one search with ``concurrent`` trials at a time; its seconds, start to end."""
    from results.board.leaderboard import read_csv_rows
    from search.runner import run_experiment

    config = experiment(
        args.data, out, args.size, args.epochs, args.trials, concurrent, args.reuse_workers
    )
    start = time.perf_counter()
    run_experiment(config)
    rows = read_csv_rows(out / "leaderboard.csv")
    if [r["status"] for r in rows] != ["completed"] * args.trials:
        raise RuntimeError(f"not every trial completed: {rows}")
    seconds, most = search_seconds(out)
    each = sorted(float(r["wall_time_s"]) for r in rows)
    print(
        f"{concurrent} concurrent: {args.trials} trials in {seconds:.1f} s "
        f"({time.perf_counter() - start:.1f} s with start-up) = "
        f"{3600 * args.trials / seconds:.0f} trials/hour; "
        f"trial wall times {each[0]:.1f}-{each[-1]:.1f} s; at most {most} at once",
        flush=True,
    )
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/chest_xray_mini"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument(
        "--reuse-workers", action="store_true", help="search.reuse_workers: true (reuse_actors)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="measure the pair this many times; the median"
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.epochs, args.trials = 32, 1, 2
    import ray

    from pneumo_core.data import prepare_data

    ray.init(
        address="local",  # never a `ray start` cluster left on this machine
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        logging_level="ERROR",
    )
    ratios: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # The node's decoded-image cache is built here, outside both clocks: otherwise
            # the first search's first trial builds it and only the 1-concurrent run pays.
            warm = experiment(args.data, Path(tmp) / "warm", args.size, 1, 1, 1, False)
            prepare_data(warm.data)
            for repeat in range(1, args.repeats + 1):
                seconds: dict[int, float] = {}
                for concurrent in (1, 2):
                    out = Path(tmp) / f"repeat{repeat}-concurrent{concurrent}"
                    seconds[concurrent] = run_search(args, out, concurrent)
                ratios.append(seconds[1] / seconds[2])
                print(f"repeat {repeat}: ratio 2 concurrent / 1 concurrent {ratios[-1]:.3f}")
    finally:
        ray.shutdown()
    reuse = "reused" if args.reuse_workers else "a new one per trial"
    print(
        f"config: cnn seed_3conv at {args.size} px, {args.epochs} epochs, 1 CPU per trial, "
        f"{args.trials} trials per search, worker processes: {reuse}"
    )
    each = f" (median of {len(ratios)}: {', '.join(f'{r:.3f}' for r in ratios)})"
    print(
        "ratio 2 concurrent / 1 concurrent (trials per hour) : "
        f"{statistics.median(ratios):.3f}{each if len(ratios) > 1 else ''}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
