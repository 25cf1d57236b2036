"""Per-trial overhead of the search: a Ray Tune trial vs the same train_model called directly.

Both sides train the same configuration (default: the 3-conv seed CNN at 128 px, 3 epochs,
early stopping off) on the same prepared data, each in a fresh process, and both clocks
include importing TensorFlow, loading the cached data and training:

* direct: a subprocess that runs ``prepare_data`` + ``train_model``;
* trial: a one-trial ``pneumo-search`` search (Ray Tune + OptunaSearch + ASHA, a checkpoint
  and a report every epoch); its time is Ray's ``time_total_s`` of the trial.

    python bench/trial_overhead.py                      # chest_xray_mini, 128 px, 3 epochs
    python bench/trial_overhead.py --quick              # 32 px, 1 epoch, tiny CNN
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DIRECT = """
import json, sys, time
start = time.perf_counter()
from pneumo_core.runtime import import_tensorflow
import_tensorflow()
from pneumo_core.configuration import from_dict
from pneumo_core.data import prepare_data
from pneumo_core.train.config import TrainConfig
from pneumo_core.train.loop import configure_threads, train_model
config = from_dict(TrainConfig, json.loads(sys.argv[1]))
configure_threads(1)
data = prepare_data(config.data)
result = train_model(config, data)
print(json.dumps({"seconds": time.perf_counter() - start, "epochs": result.epochs_run,
                  "rw_auc": result.best_metrics.get("rw_auc")}))
"""


def train_dict(root: str, size: int, epochs: int, model: dict, cache: str) -> dict:
    return {
        "data": {"root": root, "image_size": size, "cache_dir": cache},
        "model": model,
        "training": {"epochs": epochs, "batch_size": 32, "early_stopping_patience": 0},
        "seed": 0,
    }


def run_direct(config: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", DIRECT, json.dumps(config)],
        capture_output=True, text=True, check=True, cwd=REPO,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
             "HOME": str(Path.home())},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_trial(config: dict, out_dir: Path) -> dict:
    import ray

    from pneumo_core.configuration import from_dict
    from results.board.leaderboard import read_csv_rows
    from search.config import ExperimentConfig
    from search.runner import run_experiment

    params = {f"model.params.{k}": v for k, v in config["model"]["params"].items()}
    experiment = from_dict(
        ExperimentConfig,
        {
            "name": out_dir.name,
            "data": config["data"],
            "space": {"model.name": config["model"]["name"], **params},
            "training": config["training"],
            "search": {"num_samples": 1, "seed": 0},
            "resources": {"cpu": 1},
            "output_dir": str(out_dir),
        },
    )
    start = time.perf_counter()
    try:
        run_experiment(experiment)
    finally:
        ray.shutdown()
    search_wall = time.perf_counter() - start
    row = read_csv_rows(out_dir / "leaderboard.csv")[0]
    return {
        "seconds": float(row["wall_time_s"]),
        "epochs": int(row["epochs_run"]),
        "rw_auc": float(row["objective"]),
        "search_wall": search_wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/chest_xray_mini"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    model = {"name": "cnn", "params": {"preset": "seed_3conv"}}
    if args.quick:
        args.size, args.epochs, args.repeats = 32, 1, 1
        model = {"name": "cnn", "params": {"num_blocks": 2, "filters": 4, "dense_units": [8]}}
    with tempfile.TemporaryDirectory() as tmp:
        config = train_dict(args.data, args.size, args.epochs, model, str(Path(tmp) / "cache"))
        run_direct(config)  # builds the decoded-image cache once, outside both clocks
        direct, trial = [], []
        for i in range(args.repeats):  # interleaved, so drift hits both sides alike
            direct.append(run_direct(config))
            trial.append(run_trial(config, Path(tmp) / f"trial{i}"))
    d = min(r["seconds"] for r in direct)
    t = min(r["seconds"] for r in trial)
    print(
        f"config: {model['name']} {model['params']} at {args.size} px, {args.epochs} epochs, 1 CPU"
    )
    each_direct = [round(r["seconds"], 2) for r in direct]
    each_trial = [round(r["seconds"], 2) for r in trial]
    print(f"direct train_model (best of {args.repeats}) : {d:7.2f} s  {each_direct}")
    print(f"Ray Tune trial     (best of {args.repeats}) : {t:7.2f} s  {each_trial}")
    print(
        f"whole 1-trial search, driver wall time   : {min(r['search_wall'] for r in trial):7.2f} s"
    )
    print(f"ratio trial / direct                     : {t / d:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
