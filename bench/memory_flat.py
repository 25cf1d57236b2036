"""Node memory across a 20-trial search: does it stay flat?

Runs a search of N small trials (two at a time on chest_xray_mini) while a thread samples
the node's used memory (MemTotal - MemAvailable) four times a second, and prints the used
memory when each trial ended, plus the ratio of the last five to the first five.

    python bench/memory_flat.py            # 20 trials
    python bench/memory_flat.py --quick    # 4 trials
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def used_mib() -> float:
    """The node's used memory in MiB, as ``free`` counts it (total - available)."""
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


def main(argv: list[str] | None = None) -> int:
    import ray

    from pneumo_core.configuration import from_dict
    from results.board.leaderboard import read_csv_rows
    from search.config import ExperimentConfig
    from search.runner import run_experiment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/chest_xray_mini"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = 4
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "memory"
        config = from_dict(
            ExperimentConfig,
            {
                "name": "memory",
                "data": {"root": args.data, "image_size": 64, "cache_dir": f"{tmp}/cache"},
                "space": {
                    "model.name": "cnn",
                    "model.params.num_blocks": {"int": [2, 3]},
                    "model.params.filters": {"choice": [8, 16]},
                    "model.params.head": "global_avg",
                    "training.learning_rate": {"float": [3e-4, 3e-3], "log": True},
                },
                "training": {"epochs": 2, "early_stopping_patience": 0},
                "search": {"num_samples": args.trials, "max_concurrent_trials": 2},
                "scheduler": {"type": "none"},
                "output_dir": str(out),
            },
        )
        samples: list[tuple[int, float]] = []
        stop = threading.Event()

        def take_sample() -> None:
            rows = read_csv_rows(out / "leaderboard.csv") if out.exists() else []
            ended = sum(r["status"] in ("completed", "stopped_early", "failed") for r in rows)
            samples.append((ended, used_mib()))

        def sample() -> None:
            while not stop.is_set():
                take_sample()
                time.sleep(0.25)

        baseline = used_mib()
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            run_experiment(config)
        finally:
            stop.set()
            thread.join()
            take_sample()  # the last trial's end, before Ray shuts down
            ray.shutdown()
    at_end: dict[int, float] = {}
    for ended, mib in samples:
        # first sample after the n-th trial ended (trials ending together share it)
        for n in range(1, ended + 1):
            at_end.setdefault(n, mib)
    print(f"used memory before the search: {baseline:8.0f} MiB")
    for n in sorted(at_end):
        print(f"after trial {n:3d} ended     : {at_end[n]:8.0f} MiB")
    ends = [at_end[n] for n in sorted(at_end)]
    k = min(5, len(ends) // 2) or 1
    first, last = statistics.mean(ends[:k]), statistics.mean(ends[-k:])
    print(f"peak during the search        : {max(m for _, m in samples):8.0f} MiB")
    print(f"ratio last {k} / first {k} ends  : {last / first:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
