"""Out-of-fold predictions over the train split: each image scored by a model that never
trained on its patient (the input of the label-noise audit, :mod:`results.final.label_audit`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from sklearn.model_selection import GroupKFold

from pneumo_contracts.status import TrialStatus
from pneumo_core.data.dataset import PreparedData
from pneumo_core.data.pipeline import predict_batches
from pneumo_core.train.config import TrainConfig
from pneumo_core.train.loop import train_model
from pneumo_errors import TrainingError

__all__ = ["out_of_fold_probs"]


def out_of_fold_probs(
    config: TrainConfig,
    data: PreparedData,
    folds: int,
    *,
    log: Callable[[str], None] = lambda _: None,
) -> np.ndarray:
    """The positive-class probability of every train-split image, out of fold.

    The train split is cut into ``folds`` parts by patient (scikit-learn's ``GroupKFold``,
    shuffled with ``config.seed``); each part is predicted by a model trained on the other
    parts, early-stopped on the validation split as usual.

    Args:
        config: What to train (``train_model`` follows the objective's ``model_key``).
        data: Prepared data with two classes.
        folds: Number of parts (>= 2).
        log: Where progress lines go.

    Returns:
        ``(len(data.splits["train"]),)`` probabilities, in train-split order.

    Raises:
        TrainingError: Fewer than two folds, more than two classes, or a fold diverged.
    """
    if folds < 2 or data.num_classes != 2:
        raise TrainingError("out-of-fold predictions need >= 2 folds and two classes")
    train = np.asarray(data.splits["train"])
    groups = [data.patients[i] for i in train]
    probs = np.full(train.size, np.nan)
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for k, (fit, held) in enumerate(splitter.split(train, groups=groups)):
        fold = dataclasses.replace(data, splits={**data.splits, "train": train[fit]})
        result = train_model(config, fold)
        if result.status == TrialStatus.NAN_LOSS:
            raise TrainingError(f"out-of-fold model {k + 1} diverged: {result.message}")
        probs[held] = predict_batches(result.model, np.asarray(data.images[train[held]]))
        log(f"out-of-fold {k + 1}/{folds}: {held.size} images scored ({result.message})")
    return probs
