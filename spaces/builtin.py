"""The shipped spaces: cnn, transfer, combined, kermany, kermany_sizes, kermany_options, seeds,
quickstart."""

from __future__ import annotations

from typing import Any

from spaces.registry import SpaceContext, register_space

#: Backbones light enough to train from scratch on CPUs (``weights: none`` variants).
LIGHT_BACKBONES = ("mobilenet", "mobilenet_v2", "efficientnet_b0")
#: Width multipliers offered for the MobileNets.
ALPHAS = {"mobilenet": (0.25, 0.5, 0.75, 1.0), "mobilenet_v2": (0.35, 0.5, 0.75, 1.0)}


def training_and_augmentation() -> dict[str, Any]:
    """The hyperparameters every shipped search space tunes besides the model."""
    return {
        "training.optimizer": {"choice": ["adam", "adamw"]},
        "training.learning_rate": {"float": [1.0e-4, 3.0e-3], "log": True},
        "training.weight_decay": {"choice": [0.0, 1.0e-4, 1.0e-3]},
        "training.batch_size": {"choice": [16, 32, 64]},
        "training.imbalance": {"choice": ["class_weight", "oversample", "none"]},
        "augment.zoom": {"float": [0.0, 0.2]},
        "augment.rotation_deg": {"float": [0.0, 15.0]},
        "augment.translation": {"float": [0.0, 0.1]},
        "augment.contrast": {"float": [0.0, 0.3]},
        "augment.brightness": {"float": [0.0, 0.2]},
    }


def cnn_options() -> dict[str, Any]:
    """The plain-CNN sub-space: around the seed architectures."""
    return {
        "model.params.num_blocks": {"int": [2, 5]},
        "model.params.filters": {"choice": [16, 32, 64]},
        "model.params.growth": {"choice": [1.0, 1.5, 2.0]},
        "model.params.convs_per_block": {"int": [1, 2]},
        "model.params.kernel_size": {"choice": [3, 5]},
        "model.params.batch_norm": {"choice": [True, False]},
        "model.params.head": {"choice": ["flatten", "global_avg"]},
        "model.params.dense_units": {"choice": [[64], [128], [128, 64]]},
        "model.params.dropout": {"float": [0.0, 0.6]},
        "model.params.l2": {"choice": [0.0, 1.0e-5, 1.0e-4]},
        "model.params.normalization": {"choice": ["unit", "per_image"]},
    }


def _head() -> dict[str, Any]:
    return {
        "model.params.dropout": {"float": [0.0, 0.5]},
        "model.params.dense_units": {"choice": [[], [64], [128]]},
        "model.params.pooling": {"choice": ["avg", "max"]},
    }


def _fine_tune() -> dict[str, Any]:
    return {
        "model.params.fine_tune_layers": {"choice": [0, 10, 30]},
        "model.params.warmup_epochs": {"int": [1, 2]},
        "model.params.fine_tune_lr_factor": {"choice": [0.1, 0.3]},
    }


def transfer_options(context: SpaceContext) -> dict[str, Any]:
    """One option per backbone usable here.

    A backbone is offered with ImageNet weights where its weight file is found (or
    downloads are allowed), and from scratch (``weights: none``) when it is light enough
    for CPUs (:data:`LIGHT_BACKBONES`).
    """
    options: dict[str, Any] = {}
    for name in ("mobilenet", "mobilenet_v2", "efficientnet_b0", "densenet121", "resnet50",
                 "vgg16", "xception"):  # fmt: skip
        branches: dict[str, Any] = {}
        alphas = ALPHAS.get(name)
        if alphas:
            ready = [a for a in alphas if context.has_pretrained(name, {"alpha": a})]
            if ready:
                branches["imagenet"] = {"model.params.alpha": {"choice": ready}, **_fine_tune()}
            if name in LIGHT_BACKBONES:
                branches["none"] = {"model.params.alpha": {"choice": list(alphas[:2])}}
        else:
            if context.has_pretrained(name, {}):
                branches["imagenet"] = _fine_tune()
            if name in LIGHT_BACKBONES:
                branches["none"] = {}
        if branches:
            options[name] = {"model.params.weights": {"choice": branches}, **_head()}
    return options


@register_space("cnn", "plain CNNs around the seed architectures, with training and augmentation")
def cnn_space(context: SpaceContext) -> dict[str, Any]:
    """Plain CNNs only."""
    return {"model.name": {"choice": {"cnn": cnn_options()}}, **training_and_augmentation()}


@register_space("transfer", "ImageNet backbones with weights here, light ones from scratch")
def transfer_space(context: SpaceContext) -> dict[str, Any]:
    """Transfer-learning backbones only."""
    return {"model.name": {"choice": transfer_options(context)}, **training_and_augmentation()}


@register_space("combined", "cnn and transfer together (the default)")
def combined_space(context: SpaceContext) -> dict[str, Any]:
    """Plain CNNs and backbones in one conditional choice."""
    options = {"cnn": cnn_options(), **transfer_options(context)}
    return {"model.name": {"choice": options}, **training_and_augmentation()}


def pretrained_options(context: SpaceContext) -> dict[str, Any]:
    """The backbones of :func:`transfer_options` with ImageNet weights only."""
    options: dict[str, Any] = {}
    for name, option in transfer_options(context).items():
        branches = option["model.params.weights"]["choice"]
        if "imagenet" in branches:
            weights = {"choice": {"imagenet": branches["imagenet"]}}
            options[name] = {**option, "model.params.weights": weights}
    return options


@register_space(
    "kermany", "plain CNNs and ImageNet backbones (none from scratch): the kermany.yaml recipe"
)
def kermany_space(context: SpaceContext) -> dict[str, Any]:
    """What ``search/kermany.yaml`` searches on CPUs.

    Backbones trained from scratch are left out: on CPUs they cost the most per epoch and
    start from nothing, where plain CNNs are cheap and pretrained features start ahead.
    CNNs start with at most 32 filters: at 128 px a 64-filter first block with two
    convolutions took over 15 minutes for one epoch on one CPU (a quarter of the budget
    before ASHA could judge it), where a 32-filter CNN took 2 minutes.
    """
    cnn = {**cnn_options(), "model.params.filters": {"choice": [16, 32]}}
    options = {"cnn": cnn, **pretrained_options(context)}
    return {"model.name": {"choice": options}, **training_and_augmentation()}


#: Resolutions the ``kermany_sizes`` space draws from: cheap ones (a 128 px epoch costs
#: 1.8x a 96 px one, 4x a 64 px one; bench/surrogate collects hundreds of curves).
KERMANY_SIZES = (64, 96)


@register_space(
    "kermany_sizes",
    "kermany with the image size searched too (64 or 96 px): bench/surrogate's space",
)
def kermany_sizes_space(context: SpaceContext) -> dict[str, Any]:
    """The ``kermany`` space with ``data.image_size`` among :data:`KERMANY_SIZES`.

    The learning curves of the surrogate benchmark (bench/surrogate) are drawn from it: a
    cheap resolution is part of what a search may choose.
    """
    return {**kermany_space(context), "data.image_size": {"choice": list(KERMANY_SIZES)}}


#: Preprocessing inside the model (every model family has these parameters).
PREPROCESSING_OPTIONS = {
    "model.params.equalize": {"choice": [False, True]},
    "model.params.border_crop": {"choice": [0.0, 0.08]},
}
#: Regularization of the loss (two classes); weight decay is in every shipped space.
REGULARIZATION_OPTIONS = {
    "training.label_smoothing": {"choice": [0.0, 0.1]},
    "training.mixup": {"choice": [0.0, 0.2]},
}


@register_space(
    "kermany_options",
    "kermany plus equalization, border crop, label smoothing and mixup (bench/robustness.py)",
)
def kermany_options_space(context: SpaceContext) -> dict[str, Any]:
    """The ``kermany`` space with the options meant to generalize beyond the training data.

    Each model option gains :data:`PREPROCESSING_OPTIONS`; training gains
    :data:`REGULARIZATION_OPTIONS`. ``bench/robustness.py`` measures which of them help on
    the external set and the robustness suite.
    """
    space = kermany_space(context)
    models = space["model.name"]["choice"]
    with_options = {name: {**sub, **PREPROCESSING_OPTIONS} for name, sub in models.items()}
    return {**space, "model.name": {"choice": with_options}, **REGULARIZATION_OPTIONS}


@register_space("seeds", "exactly the seed configurations, to reproduce them")
def seeds_space(context: SpaceContext) -> dict[str, Any]:
    """The two seed CNNs with the seed training recipe (Adam 1e-3, batch 32)."""
    return {
        "model.name": "cnn",
        "model.params.preset": {"choice": ["seed_3conv", "seed_5conv"]},
        "training.optimizer": "adam",
        "training.learning_rate": 1.0e-3,
        "training.batch_size": 32,
        "training.imbalance": "none",
    }


@register_space(
    "quickstart", "small CNNs and MobileNet 0.25: a search that ends in minutes on CPUs"
)
def quickstart_space(context: SpaceContext) -> dict[str, Any]:
    """A cheap conditional space for smoke runs and the quickstart."""
    options: dict[str, Any] = {
        "cnn": {
            "model.params.num_blocks": {"int": [2, 3]},
            "model.params.filters": {"choice": [8, 16, 32]},
            "model.params.head": "global_avg",
            "model.params.dense_units": {"choice": [[32], [64]]},
            "model.params.dropout": {"float": [0.0, 0.5]},
        }
    }
    if context.has_pretrained("mobilenet", {"alpha": 0.25}):
        options["mobilenet"] = {
            "model.params.alpha": 0.25,
            "model.params.weights": "imagenet",
            "model.params.dropout": {"float": [0.0, 0.5]},
        }
    return {
        "model.name": {"choice": options},
        "training.learning_rate": {"float": [3.0e-4, 3.0e-3], "log": True},
        "training.batch_size": {"choice": [32, 64]},
        "training.imbalance": {"choice": ["class_weight", "oversample"]},
        "augment.zoom": {"float": [0.0, 0.15]},
    }
