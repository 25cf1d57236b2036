"""Collects real learning curves of the ``kermany`` space for the surrogate (issue 18).

Configuration ``i`` is drawn at random from the ``kermany_sizes`` space (the space of
``search/kermany.yaml`` plus an image size of 64 or 96 px; Optuna's RandomSampler
seeded by ``--seed`` and ``i``, so draws are reproducible and independent). It is trained
on the full epoch budget with no early stopping, exactly as a trial trains it
(``pneumo_core.train.train_model``, one CPU thread, the trial's data split and cache).
Each epoch's validation rw_auc, AUC, sensitivity, specificity and seconds are kept, and
the curve is merged into one file (``bench/figures/surrogate_curves.json``,
:mod:`bench.surrogate.blackbox`) as soon as it ends. Collection is resumable and runs in
pieces: curves already in the file are skipped, ``--minutes`` stops handing out new
configurations after that long, and ``--shard K/N`` splits the draws between processes
that share the file.

    python bench/surrogate/collect.py ../shared/data/chest_xray_224 --configs 300 \\
        --workers 2 --minutes 240
    python bench/surrogate/collect.py ../shared/data/chest_xray_mini --quick
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.surrogate.blackbox import Blackbox, Curve, load_blackbox, merge_curve  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "figures" / "surrogate_curves.json"


def collection_experiment(
    data_root: str, *, quick: bool = False, external: str | None = None
) -> tuple[Any, Any]:
    """The experiment and space the curves come from.

    The ``kermany`` recipe with every epoch run (no early stopping, no ASHA), over the
    ``kermany_sizes`` space (the image size searched among 64 and 96 px). ``quick``: a
    tiny CNN space at 32 px, 2 epochs. ``external``: a dataset whose ``test`` patients are
    left out of this one and scored as the external set (``data.external_root``).

    Returns:
        ``(ExperimentConfig, SearchSpace)``.
    """
    from search.experiment_space import prepare_experiment

    overrides: dict[str, Any] = {
        "name": "surrogate_curves",
        "data": {"root": str(Path(data_root).resolve())},
        "space": "kermany_sizes",
        "training": {"early_stopping_patience": 0},
        "scheduler": {"type": "none"},
    }
    if external:
        overrides["data"]["external_root"] = str(Path(external).resolve())
        overrides["data"]["external_split"] = "val" if quick else "test"
    if quick:
        from bench.quick import QUICK_SPACE

        overrides["space"] = {**QUICK_SPACE, "data.image_size": 32}
        overrides["training"]["epochs"] = 2
    return prepare_experiment(REPO / "search" / "kermany.yaml", overrides, samples=4)


def draw(space: Any, seed: int, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configuration ``index`` of the collection: ``(optuna params, configuration values)``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=seed * 1_000_003 + index)
    trial = optuna.create_study(sampler=sampler).ask()
    constants = space.define_by_run(trial)
    return dict(trial.params), space.resolve({**trial.params, **constants})


def collect_one(
    data_root: str, quick: bool, seed: int, index: int, out: str, external: str | None
) -> str:
    """Trains configuration ``index`` to the epoch budget and merges its curve into ``out``.

    Runs in a worker process of its own (one CPU thread, like a 1-CPU trial).

    Returns:
        A line saying what was trained and how it ended.
    """
    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    from pneumo_core.data import prepare_data
    from pneumo_core.train.loop import configure_threads, train_model
    from pneumo_errors import PneumoError

    configure_threads(1)
    config, space = collection_experiment(data_root, quick=quick, external=external)
    params, values = draw(space, seed, index)
    train_config = config.trial_config(values, seed=seed + index)
    start = time.perf_counter()
    rows: list[list[float]] = []
    first_epoch_at: list[float] = []

    def on_epoch(state) -> None:
        if not first_epoch_at:
            first_epoch_at.append(time.perf_counter() - state.row.get("epoch_seconds", 0.0))
        row = state.row
        rows.append([row.get(f"val_{m}", float("nan")) for m in ("rw_auc", "auc")]
                    + [row.get("val_sensitivity", float("nan")),
                       row.get("val_specificity", float("nan")),
                       row.get("epoch_seconds", float("nan"))])  # fmt: skip

    param_count, status, scores = 0, "completed", {}
    try:
        data = prepare_data(train_config.data)
        result = train_model(train_config, data, on_epoch=on_epoch)
        param_count, status = result.param_count, result.status
        if status == "stopped_early":  # no early stopping is configured; kept as it came
            status = "completed"
        if result.model is not None and status == "completed":
            scores = proxy_scores(result.model, train_config, data, quick)
    except PneumoError as exc:
        status = f"error: {exc}"[:200]
    setup = (first_epoch_at[0] if first_epoch_at else time.perf_counter()) - start
    header = Blackbox(config.to_yaml_dict(), space.names(), config.objective.metric)
    curve = Curve(index, params, status, int(param_count), setup, rows, scores)
    count = merge_curve(out, header, curve)
    last = f"rw_auc {rows[-1][0]:.4f}" if rows else "no epoch"
    seconds = sum(r[-1] for r in rows)
    return (
        f"config {index}: {values.get('model.name')} @ {values.get('data.image_size')} px, "
        f"{len(rows)} epochs in {seconds:.0f} s, {status}, {last} ({count} in the file)"
    )


def proxy_scores(model: Any, config: Any, data: Any, quick: bool) -> dict[str, float]:
    """The kept model on carved test, the external set and the robustness suite (as
    ``final`` scores its candidates side by side: each at its validation threshold)."""
    from pneumo_core.data.external import prepare_external
    from results.final.ensemble import side_by_side

    external = (
        prepare_external(config.data, data.class_names) if config.data.external_root else None
    )
    row = side_by_side(
        [("collected", model, None)],
        data,
        0.95,
        config.objective,
        external=external,
        suite_seed=None if quick else 0,
    )["comparison"][0]
    return {k: float(v) for k, v in row.items() if isinstance(v, float) and k != "threshold"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the dataset folder (chest_xray_224)")
    parser.add_argument("--configs", type=int, default=300, help="draws 0..N-1 in the end")
    parser.add_argument("--workers", type=int, default=2, help="configurations at once")
    parser.add_argument("--minutes", type=float, default=0, help="hand out none after (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--external",
        help="a dataset whose test patients are left out and scored as the external set "
        "(chest_xray_mini; with --quick the data's own val)",
    )
    parser.add_argument(
        "--shard",
        default="0/1",
        metavar="K/N",
        help="collect only draws i with i %% N == K (processes that can be stopped apart)",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--quick", action="store_true", help="2 tiny configurations at 32 px")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.workers = 2, 1
        if args.out == str(DEFAULT_OUT):
            args.out = str(REPO / "runs" / "bench_surrogate" / "quick_curves.json")

    # the decoded-image caches are built once here, not by every worker at the same time
    from pneumo_core.data import prepare_data

    config, _ = collection_experiment(args.data, quick=args.quick, external=args.external)
    from spaces.builtin import KERMANY_SIZES

    for size in (32,) if args.quick else KERMANY_SIZES:
        prepare_data(dataclasses.replace(config.data, image_size=size))
    existing = load_blackbox(args.out)
    done = {c.index for c in existing.curves} if existing else set()
    shard, shards = (int(x) for x in args.shard.split("/"))
    pending = [i for i in range(args.configs) if i not in done and i % shards == shard]
    print(f"{len(done)} curves in {args.out}; {len(pending)} to collect", flush=True)
    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        args.workers, mp_context=context, max_tasks_per_child=1
    ) as pool:
        running: set[concurrent.futures.Future] = set()
        while pending or running:
            while pending and len(running) < args.workers:
                if deadline is not None and time.monotonic() > deadline:
                    pending = []
                    break
                index = pending.pop(0)
                running.add(
                    pool.submit(
                        collect_one,
                        args.data,
                        args.quick,
                        args.seed,
                        index,
                        args.out,
                        args.external,
                    )
                )
            if not running:
                break
            finished, running = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                print(future.result(), flush=True)
    final = load_blackbox(args.out)
    print(f"{len(final.curves) if final else 0} curves in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
