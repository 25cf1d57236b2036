"""Ray's fractional GPUs on a real GPU: trials per hour at ``gpu`` 1, 0.5 and 0.25 per trial.

What ``resources.gpu: 0.5`` in an experiment asks of Ray, measured where TensorFlow was not
available: the GPU machine lent to this project has PyTorch and CUDA 13 and no network,
and TensorFlow 2.21 needs CUDA 12 libraries (about 1.8 GB with its wheel), so each trial
here trains a PyTorch CNN the size of the ``kermany`` winner (5 blocks from 16 filters,
128 px, batch 32) for a fixed number of steps. It checks what the product relies on:
Ray runs ``1 / gpu`` trials at once on one GPU and gives each trial the GPU's id in
``ray.get_gpu_ids()`` and ``CUDA_VISIBLE_DEVICES``. It measures trials per hour at each
fraction, their ratio to ``gpu: 1``, and GPU utilisation and memory (``nvidia-smi``,
sampled every 0.5 s) over each phase.

    python bench/gpu_packing.py --trials 8 --steps 600 --epochs 3   # needs torch and a GPU

Not run by the tests (CI has no GPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def small_cnn(torch: Any) -> Any:
    """5 conv blocks from 16 filters (growth 1.5), global pooling, a 64-unit head."""
    layers: list[Any] = []
    channels, filters = 1, 16
    for _ in range(5):
        layers += [
            torch.nn.Conv2d(channels, filters, 3, padding=1),
            torch.nn.BatchNorm2d(filters),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        channels, filters = filters, int(filters * 1.5)
    layers += [
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(channels, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    ]
    return torch.nn.Sequential(*layers)


def trial(config: dict[str, Any]) -> None:
    """One trial: fixed steps per epoch on host-made batches; reports each epoch to Tune."""
    import os

    import ray
    import torch
    from ray import tune

    begun = time.time()
    gpu_ids = ",".join(str(i) for i in ray.get_gpu_ids())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    generator = torch.Generator().manual_seed(config["seed"])
    device = torch.device("cuda")
    model = small_cnn(torch).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    size, batch = config["image_size"], config["batch_size"]
    for epoch in range(config["epochs"]):
        for _ in range(config["steps"]):
            images = torch.rand(batch, 1, size, size, generator=generator).to(device)
            labels = (torch.rand(batch, generator=generator) > 0.5).float().to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(images).squeeze(1), labels)
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        tune.report(
            {
                "epoch": epoch + 1,
                "loss": float(loss.item()),
                "began": begun,
                "ended": time.time(),
                "gpu_ids": gpu_ids,
                "cuda_visible_devices": visible,
                "device_count": torch.cuda.device_count(),
            }
        )


def _sample_gpu(path: Path) -> subprocess.Popen:
    query = "--query-gpu=utilization.gpu,memory.used"
    command = ["nvidia-smi", query, "--format=csv,noheader,nounits", "-lms", "500"]
    return subprocess.Popen(command, stdout=path.open("w"), stderr=subprocess.DEVNULL)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def phase(gpu: float, args: argparse.Namespace, storage: Path) -> dict[str, Any]:
    """All trials at ``gpu`` per trial; wall time, trials per hour, GPU use."""
    from ray import tune

    samples = storage / f"nvidia_smi_{gpu}.csv"
    sampler = _sample_gpu(samples)
    space = {
        "seed": tune.grid_search(list(range(args.trials))),
        "epochs": args.epochs,
        "steps": args.steps,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
    }
    tuner = tune.Tuner(
        tune.with_resources(trial, {"cpu": args.cpus, "gpu": gpu}),
        param_space=space,
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(name=f"gpu_{gpu}", storage_path=str(storage), verbose=0),
    )
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    sampler.terminate()
    sampler.wait()
    util, memory = [], []
    for line in samples.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            util.append(int(parts[0]))
            memory.append(int(parts[1]))
    results = [r.metrics for r in grid]
    errors = [str(r.error) for r in grid if r.error]
    spans = [(m["began"], m["ended"]) for m in results if "began" in m]
    trial_seconds = [e - b for b, e in spans]
    return {
        "gpu_per_trial": gpu,
        "trials": len(results),
        "errors": errors,
        "wall_s": round(wall, 1),
        "trials_per_hour": round(3600 * len(spans) / wall, 1),
        "most_at_once": _most_at_once(spans),
        "mean_trial_s": round(sum(trial_seconds) / max(1, len(trial_seconds)), 1),
        "gpu_util_mean_pct": round(sum(util) / len(util), 1) if util else None,
        "gpu_util_samples": len(util),
        "gpu_memory_peak_mib": max(memory) if memory else None,
        "gpu_ids_seen": sorted({m.get("gpu_ids", "") for m in results}),
        "cuda_visible_devices_seen": sorted({m.get("cuda_visible_devices", "") for m in results}),
        "device_counts_seen": sorted({m.get("device_count", -1) for m in results}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600, help="steps per epoch")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs per trial")
    parser.add_argument("--out", default="", help="where the JSON goes (default: print only)")
    args = parser.parse_args(argv)

    import ray

    ray.init(  # a simulated node of its own, never a `ray start` cluster on this machine
        address="local", num_cpus=16, num_gpus=1, include_dashboard=False, log_to_driver=False
    )
    phases = []
    with tempfile.TemporaryDirectory() as folder:
        for gpu in args.fractions:
            phases.append(phase(gpu, args, Path(folder)))
            print(json.dumps(phases[-1]), flush=True)
    ray.shutdown()
    base = phases[0]["trials_per_hour"]
    heads = (("gpu/trial", 10), ("at once", 9), ("trials/h", 10), ("ratio", 8), ("util %", 8))
    print("\n" + "".join(f"{h:>{w}}" for h, w in heads) + f"{'mem MiB':>9}")
    for p in phases:
        ratio = p["trials_per_hour"] / base if base else float("nan")
        print(
            f"{p['gpu_per_trial']:>10}{p['most_at_once']:>9}{p['trials_per_hour']:>10.1f}"
            f"{ratio:>8.2f}{p['gpu_util_mean_pct'] or 0:>8.1f}{p['gpu_memory_peak_mib'] or 0:>9}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "phases": phases}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
