"""One training run from a configuration, as ``pneumo-search train`` runs it.

Prepares the data, trains with one progress line per epoch, prints the validation metrics
of the best epoch and, with ``out``, writes ``train_result.json`` and ``model.keras``.
Imports TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pneumo_core.train.config import TrainConfig
from pneumo_core.train.loop import TrainResult

__all__ = ["train_and_report"]

#: The validation metrics printed after training, in this order.
SHOWN_METRICS = ("rw_auc", "auc", "sensitivity", "specificity", "precision", "f1", "accuracy")


def train_and_report(
    config: TrainConfig, *, out: str | Path | None = None, log: Callable[[str], None] = print
) -> TrainResult:
    """Trains ``config`` once, reporting as it goes.

    Args:
        config: The training configuration.
        out: A folder for ``train_result.json`` and ``model.keras`` (created), or None.
        log: Where the lines go.

    Returns:
        The training result (``status`` ``nan_loss`` when the loss diverged).

    Raises:
        DataError: The data cannot be used.
    """
    from pneumo_core.data import prepare_data, problem_lines
    from pneumo_core.train.callbacks import EpochPrinter
    from pneumo_core.train.loop import train_model

    data = prepare_data(config.data)
    splits = data.summary["splits"]
    counts = ", ".join(f"{name} {info['images']}" for name, info in splits.items())
    cache = "reused" if data.summary["cache"]["hit"] else "built"
    log(f"data: {data.summary['root']} ({counts} images; cache {cache})")
    for line in problem_lines(data.summary):
        log(line)
    log(f"model: {config.model.name} {config.model.params or ''}".rstrip())
    result = train_model(config, data, callbacks=[EpochPrinter(config.training.epochs, log)])
    log(
        f"{result.status}: {result.message} "
        f"({result.seconds:.1f} s, {result.param_count:,} parameters)"
    )
    if result.best_metrics:
        log(f"validation metrics at best epoch {result.best_epoch}:")
        for name in SHOWN_METRICS:
            log(f"  {name:<12} {result.best_metrics[name]:.4f}")
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        summary = {
            "status": result.status,
            "message": result.message,
            "best_epoch": result.best_epoch,
            "validation": result.best_metrics,
            "history": result.history,
            "param_count": result.param_count,
            "seconds": result.seconds,
            "data": data.summary,
        }
        (out / "train_result.json").write_text(json.dumps(summary, indent=2, default=str))
        result.model.save(out / "model.keras")
        log(f"wrote {out / 'train_result.json'} and {out / 'model.keras'}")
    return result
