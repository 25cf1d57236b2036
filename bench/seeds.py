"""The seed configurations against a search's winner, trained and tested side by side.

Each configuration of the ``seeds`` space (the two seed CNNs with their Adam 1e-3 / batch
32 recipe) and the best trial of a finished search are retrained with the search's own data
pipeline, image size, epochs and seed; each gets its operating threshold on validation
(sensitivity >= 0.95, as ``final``) and is scored once on the test split.

    python bench/seeds.py runs/quickstart            # after `pneumo-search run ...`
    python bench/seeds.py runs/quickstart --quick    # 1 epoch each (the test suite's mode)
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLUMNS = ("auc", "rw_auc", "sensitivity", "specificity")


def seed_configurations(context) -> dict[str, dict[str, Any]]:
    """Every configuration of the ``seeds`` space, by preset name (its choices expanded)."""
    from spaces.registry import space_definition

    definition = space_definition("seeds", context)
    fixed = {k: v for k, v in definition.items() if not isinstance(v, dict)}
    choices = {k: v["choice"] for k, v in definition.items() if isinstance(v, dict)}
    configurations = {}
    for values in itertools.product(*choices.values()):
        chosen = dict(zip(choices, values, strict=True))
        name = str(chosen.get("model.params.preset", "/".join(map(str, values))))
        configurations[name] = {**fixed, **chosen}
    return configurations


def evaluate(experiment, values: dict[str, Any], data, epochs: int, target: float) -> dict:
    """Trains one configuration, picks its threshold on validation, scores the test split."""
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.metrics import threshold_for_sensitivity
    from pneumo_core.train.loop import train_model
    from results.report.evaluation import binary_evaluation

    config = experiment.trial_config(values, seed=experiment.search.seed)
    config = dataclasses.replace(
        config, training=dataclasses.replace(config.training, epochs=epochs)
    )
    start = time.perf_counter()
    result = train_model(config, data)
    val_images, val_labels = data.arrays("val")
    threshold = threshold_for_sensitivity(
        val_labels, predict_batches(result.model, val_images), target
    )
    test_images, test_labels = data.arrays("test")
    scores = binary_evaluation(
        test_labels,
        predict_batches(result.model, test_images),
        threshold,
        class_names=data.class_names,
        seed=experiment.search.seed,
        n_boot=200,
        tau=config.objective.tau,
        w=config.objective.w,
    )
    row = {name: scores["metrics"][name]["value"] for name in COLUMNS}
    row["val_" + config.objective.key] = result.best_metrics.get(config.objective.key)
    row["threshold"] = threshold
    row["params"] = int(result.param_count)
    row["seconds"] = time.perf_counter() - start
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a finished search (runs/NAME)")
    parser.add_argument("--epochs", type=int, help="epochs of each (default: the search's)")
    parser.add_argument("--target-sensitivity", type=float, default=0.95)
    parser.add_argument("--quick", action="store_true", help="1 epoch each")
    args = parser.parse_args(argv)

    from pneumo_core.data import prepare_data
    from pneumo_core.runtime import import_tensorflow
    from results.board.leaderboard import read_csv_rows, row_params
    from search.config import load_experiment
    from search.experiment_space import space_context

    import_tensorflow()
    run_dir = Path(args.run_dir).resolve()
    experiment = load_experiment(run_dir / "experiment.yaml")
    ranked = [r for r in read_csv_rows(run_dir / "leaderboard.csv") if r.get("rank")]
    if not ranked:
        print(f"{run_dir}: no ranked trial on the leaderboard", file=sys.stderr)
        return 2
    epochs = 1 if args.quick else (args.epochs or experiment.epochs)
    context = space_context(experiment.weights, experiment.data.image_size)
    candidates = {f"search winner ({ranked[0]['trial_id']})": row_params(ranked[0])}
    candidates.update(seed_configurations(context))
    data = prepare_data(experiment.data)  # the search's pipeline and cache
    from pneumo_errors import ConfigError

    rows: dict[str, dict] = {}
    unbuildable: dict[str, str] = {}
    for name, values in candidates.items():
        try:
            rows[name] = evaluate(experiment, values, data, epochs, args.target_sensitivity)
        except ConfigError as exc:  # e.g. 5 pooled blocks do not fit a small image
            unbuildable[name] = str(exc)
            continue
        print(f"trained {name}: {rows[name]['seconds']:.0f} s", flush=True)

    print(
        f"\n{run_dir.name}: {experiment.data.image_size} px, {epochs} epochs each, seed "
        f"{experiment.search.seed}, threshold on validation (sensitivity >= "
        f"{args.target_sensitivity:g}), test split of {data.config.root}"
    )
    header = f"{'configuration':<34}{'params':>9}" + "".join(f"{c:>13}" for c in COLUMNS)
    print(header)
    for name, row in rows.items():
        cells = "".join(f"{row[c]:>13.4f}" for c in COLUMNS)
        print(f"{name:<34}{row['params']:>9}{cells}")
    for name, reason in unbuildable.items():
        print(f"{name:<34}   not trained: {reason}")
    winner = rows[next(iter(candidates))]
    seeds = [row for name, row in rows.items() if not name.startswith("search winner")]
    if not seeds:
        print("no seed configuration can be built at this image size")
        return 0
    margin = min(winner["rw_auc"] - row["rw_auc"] for row in seeds)
    print(
        f"search winner minus the best seed configuration, test rw_auc: {margin:+.4f} "
        f"({'beats every seed' if margin > 0 else 'does NOT beat every seed'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
