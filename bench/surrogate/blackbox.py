"""The stored learning curves: one compact JSON file, merged into under a lock.

Syne Tune calls this a blackbox: for each evaluated configuration, its hyperparameters and
per-epoch objectives and costs. Ours (``bench/figures/surrogate_curves.json``)::

    {"version": 1, "experiment": {...the kermany recipe as collected...},
     "space": [Optuna parameter names], "metric": "rw_auc",
     "curves": [{"index": 0, "params": {optuna name: value}, "status": "completed",
                 "param_count": 1234, "setup_s": 3.1,
                 "epochs": [[val_rw_auc, val_auc, val_sensitivity, val_specificity,
                             epoch_seconds], ...],
                 "scores": {"test_auc": ..., "external_specificity": ..., ...}}, ...]}

``epochs`` rows follow :data:`EPOCH_COLUMNS`; a diverged run has ``status`` ``nan_loss``
and the epochs it finished. Values are rounded to 5 decimals: the file stays small.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EPOCH_COLUMNS", "Blackbox", "Curve", "dumps", "load_blackbox", "merge_curve"]

#: Columns of each epoch row.
EPOCH_COLUMNS = ("val_rw_auc", "val_auc", "val_sensitivity", "val_specificity", "seconds")
VERSION = 1


@dataclass
class Curve:
    """One configuration trained to the epoch budget.

    Attributes:
        index: Its draw number (configuration ``index`` of the collection's seed).
        params: Optuna parameter name -> value (what a sampler proposes).
        status: ``completed``, ``nan_loss`` (diverged; ``epochs`` ends there) or
            ``error`` (the configuration could not train: no epochs).
        param_count: Trainable and frozen parameters of the model.
        setup_s: Seconds before the first epoch (data, model build, compile).
        epochs: One row per epoch (:data:`EPOCH_COLUMNS`).
        scores: The kept (best-epoch) model on the shift proxies of issue 16, at its own
            validation threshold (sensitivity >= 0.95): carved ``test_*``, ``external_*``
            and the robustness suite's ``suite_mean_rw_auc`` / ``suite_worst_rw_auc``.
    """

    index: int
    params: dict[str, Any]
    status: str
    param_count: int
    setup_s: float
    epochs: list[list[float]]
    scores: dict[str, float] = field(default_factory=dict)

    def column(self, name: str) -> list[float]:
        """One column of :data:`EPOCH_COLUMNS` over the epochs."""
        k = EPOCH_COLUMNS.index(name)
        return [row[k] for row in self.epochs]

    def to_json(self) -> dict[str, Any]:
        """The stored form (values rounded)."""
        return {
            "index": self.index,
            "params": self.params,
            "status": self.status,
            "param_count": self.param_count,
            "setup_s": round(self.setup_s, 2),
            "epochs": [[_round(v) for v in row] for row in self.epochs],
            "scores": {k: _round(v) for k, v in self.scores.items()},
        }


@dataclass
class Blackbox:
    """A collection of curves and how they were made.

    Attributes:
        experiment: The experiment the curves come from (as a dictionary).
        space: Every Optuna parameter name of the space (with the image size).
        metric: The objective's metric.
        curves: The curves, by draw index.
    """

    experiment: dict[str, Any]
    space: list[str]
    metric: str
    curves: list[Curve] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """The epoch budget (the longest curve)."""
        return max((len(c.epochs) for c in self.curves), default=0)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "version": VERSION,
            "experiment": self.experiment,
            "space": self.space,
            "metric": self.metric,
            "curves": [c.to_json() for c in sorted(self.curves, key=lambda c: c.index)],
        }


def _round(value: float) -> float | None:
    return round(float(value), 5) if math.isfinite(value) else None


def dumps(blackbox: Blackbox) -> str:
    """The file's text: compact JSON with one curve per line (readable diffs)."""
    raw = blackbox.to_json()
    curves = raw.pop("curves")
    head = json.dumps(raw, separators=(",", ":"))[:-1]
    lines = [json.dumps(c, separators=(",", ":")) for c in curves]
    return head + ',"curves":[\n' + ",\n".join(lines) + "\n]}\n"


def load_blackbox(path: str | Path) -> Blackbox | None:
    """Reads a stored blackbox, or None when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    if raw.get("version") != VERSION:
        raise ValueError(f"{path}: blackbox version {raw.get('version')}, expected {VERSION}")
    curves = [
        Curve(
            index=c["index"],
            params=c["params"],
            status=c["status"],
            param_count=c["param_count"],
            setup_s=c["setup_s"],
            epochs=[[math.nan if v is None else v for v in row] for row in c["epochs"]],
            scores={k: math.nan if v is None else v for k, v in c.get("scores", {}).items()},
        )
        for c in raw["curves"]
    ]
    return Blackbox(raw["experiment"], raw["space"], raw["metric"], curves)


def merge_curve(path: str | Path, header: Blackbox, curve: Curve) -> int:
    """Adds one curve to the file at ``path`` (created from ``header`` if missing).

    Read, merge and atomic rewrite happen under a lock file, so several collecting
    processes lose nothing; a curve already there (same index) is replaced.

    Returns:
        How many curves the file holds now.
    """
    from results.board.leaderboard import locked

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        current = load_blackbox(path) or Blackbox(header.experiment, header.space, header.metric)
        current.curves = [c for c in current.curves if c.index != curve.index] + [curve]
        text = dumps(current)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
        return len(current.curves)
