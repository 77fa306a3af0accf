"""Protocols: named training recipes, per dataset.

A table compares methods only when every row was trained with the same recipe, so the
default recipe is shared by all methods; ``original`` lets a method use its own paper's
recipe where its card states one, and its paper's network on the datasets where its code used
one: each method declares these in its own file (``Method.original``, an OriginalRecipe), and
this file asks the method registry for them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from noisybench.core.errors import BenchError
from noisybench.methods import get_method, method_names
from noisybench.methods.base import OriginalRecipe


@dataclass(frozen=True)
class Recipe:
    model: str
    optimizer: str  # "sgd" | "adam"
    lr: float
    momentum: float  # SGD momentum, or Adam's beta1
    weight_decay: float
    batch_size: int
    epochs: int
    schedule: str  # "multistep" | "constant" | "coteaching" (linear decay + beta1 drop)
    milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    decay_start: int = 80  # "coteaching" schedule: linear decay to 0 from this epoch
    augment: bool = False  # pad-4 random crop + horizontal flip
    normalize: bool = True  # per-channel mean/std of the training images
    val_fraction: float = 0.0  # noisy validation split held out of the training set
    nesterov: bool = False
    # Fixed per-channel (mean, std) on the 0-1 scale instead of the training images' own:
    # what ImageNet-pretrained weights expect, and all a streamed dataset can have.
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    crop_padding: int = 4  # the random crop's zero padding when augmenting; 0: flip only
    # The protocol starts from ImageNet weights (given with --pretrained, as they cannot be
    # downloaded here); trials of its own model refuse to start from scratch without them.
    imagenet_init: bool = False
    # Fields added after trials were first stored: to_json leaves them out at their defaults, so
    # that every recipe recorded before them still reads as the same recipe (RECIPE_FIELDS_ADDED).
    # Stop an epoch after this many steps: Co-teaching's, JoCoR's and SIGUA's main.py break once
    # `i > num_iter_per_epoch` (400), i.e. after 401 steps (469 batches of 128 on MNIST otherwise).
    max_steps_per_epoch: int | None = None
    drop_last: bool = False  # drop each epoch's last partial batch (their DataLoader's drop_last=True)
    # (name, --hp text) defaults the protocol gives the method's hyperparameters, applied unless
    # --hp sets the field; only fields whose own default is None ("the protocol's"), so that
    # an explicit value is never mistaken for an unset one.
    method_hparams: tuple[tuple[str, str], ...] = ()
    # Train and test on every image transposed (rows <-> columns), as CausalNL's Fashion-MNIST
    # loader does (`data.transpose((0, 2, 1))` after drawing the noise): its horizontal flip is
    # then a vertical flip of the picture as released.
    transpose_images: bool = False

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        for name, default in RECIPE_FIELDS_ADDED.items():
            if data[name] == default:
                del data[name]
        return data


# Recipe fields added after trials were first stored, with their defaults (left out of to_json).
RECIPE_FIELDS_ADDED: dict[str, object] = {"max_steps_per_epoch": None, "drop_last": False, "method_hparams": (),
                                          "transpose_images": False}


# The LEND paper's shared recipe (Sect. 5.1): ResNet-18, SGD 0.05, momentum 0.9, wd 5e-4,
# batch 256, 200 epochs, lr /10 at epoch 100, random crop + flip.
LEND_PAPER = Recipe(
    model="resnet18", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=256,
    epochs=200, schedule="multistep", milestones=(100,), augment=True,
)

# The CPU recipe for digits: an MLP that fits the clean majority within ~20 epochs and then
# memorises the noisy labels, so Best (early) and Last (memorised) differ clearly.
# Adam 5e-4, batch 64 was chosen on sym:0.4 (seed 0): best 0.950 at epoch 21, last-10 0.72.
QUICK_DIGITS = Recipe(
    model="mlp", optimizer="adam", lr=5e-4, momentum=0.9, weight_decay=0.0, batch_size=64,
    epochs=100, schedule="constant", augment=False,
)

# The CPU recipe for Fashion-MNIST: JoCoR's MNIST MLP (784-256-10, model/cnn.py MLPNet) with
# Adam 1e-3 at a constant rate, batch 128, pixels/255 without augmentation.
QUICK_FASHION_MNIST = Recipe(
    model="mlp1", optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, batch_size=128,
    epochs=50, schedule="constant", augment=False, normalize=False,
)

# Fashion-MNIST as CausalNL's own code trains (Yao et al., NeurIPS 2021; a5507203/Instance-dependent-
# Label-noise-Learning-under-a-Structural-Causal-Model main.py, causalNL.py, mylib/models/resnet.py,
# mylib/data/dataset/fashionMINIST_noise.py; ../shared/data/published/SOURCE.md): torchvision's
# ResNet-18 layout with a one-channel 7x7 stem, Adam 1e-3 (betas 0.9, 0.999) for 150 epochs
# with no decay (epoch_decay_start 1000), batch 128 with drop_last, RandomCrop(28, padding 4) +
# RandomHorizontalFlip on transposed images, ToTensor only (its Normalize is built, not used).
CAUSALNL_FASHION_MNIST = Recipe(
    model="causalnl_resnet18", optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, batch_size=128,
    epochs=150, schedule="constant", augment=True, normalize=False, drop_last=True, transpose_images=True,
)

# ImageNet's per-channel statistics (torchvision's Normalize for its pretrained models).
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# DivideMix's Clothing1M statistics (LiJunnan1992/DivideMix dataloader_clothing1M.py), which
# it uses with ImageNet-pretrained weights; kept so that our numbers are comparable to its.
CLOTHING1M_MEAN_STD = ((0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214))

# MNIST as in JoCoR (Wei et al., CVPR 2020; hongxin001/JoCoR main.py, model/cnn.py): the
# one-hidden-layer MLP, Co-teaching's Adam schedule (0.001, batch 128, linear decay from epoch 80
# with beta1 0.1), ToTensor only (pixels/255, no normalisation), no augmentation.  199 epochs:
# main.py's n_epoch=200 loops `range(1, n_epoch)` after an evaluation-only epoch 0, and its lr
# plan uses n_epoch=200, which the "coteaching" schedule reads as epochs + 1 (optim.lr_and_beta1).
JOCOR_MNIST = Recipe(
    model="mlp1", optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, batch_size=128, epochs=199,
    schedule="coteaching", decay_start=80, augment=False, normalize=False,
)

# Animal-10N as in PLC (Zhang et al., ICLR 2021; pxiangwu/PLC animal10/train.py), the
# VGG-19-BN of SELFIE (Song et al., ICML 2019) from scratch on the 64x64 images: SGD 0.1
# without momentum (the script passes none), wd 1e-3, batch 128, 100 epochs, lr x0.2 at 50
# and 75, horizontal flip only, ImageNet normalisation.
PLC_ANIMAL10N = Recipe(
    model="vgg19_bn", optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=1e-3, batch_size=128, epochs=100,
    schedule="multistep", milestones=(50, 75), lr_gamma=0.2, augment=True, crop_padding=0,
    mean_std=IMAGENET_MEAN_STD,
)

# Food-101N as in PLC (pxiangwu/PLC food101/train.py): ImageNet-pretrained ResNet-50, SGD
# 0.002 without momentum, wd 1e-3, batch 32, 30 epochs, lr /10 at 10 and 20, resize 256 +
# random crop 224 + flip (done by the stream), ImageNet normalisation; tested on Food-101's test split.
PLC_FOOD101N = Recipe(
    model="resnet50", optimizer="sgd", lr=0.002, momentum=0.0, weight_decay=1e-3, batch_size=32, epochs=30,
    schedule="multistep", milestones=(10, 20), augment=True, mean_std=IMAGENET_MEAN_STD, imagenet_init=True,
)

# Clothing1M as in DivideMix (Li et al., ICLR 2020; LiJunnan1992/DivideMix Train_clothing1M.py):
# ImageNet-pretrained ResNet-50, SGD 0.002 momentum 0.9 wd 1e-3, batch 32, 80 epochs, lr /10
# at 40; each epoch a class-balanced 32,000-image subsample of the noisy set (1000 batches x
# 32, drawn by the stream), resize 256 + random crop 224 + flip, DivideMix's Clothing1M mean/std.
DIVIDEMIX_CLOTHING1M = Recipe(
    model="resnet50", optimizer="sgd", lr=0.002, momentum=0.9, weight_decay=1e-3, batch_size=32, epochs=80,
    schedule="multistep", milestones=(40,), augment=True, mean_std=CLOTHING1M_MEAN_STD, imagenet_init=True,
)

PROTOCOLS: dict[str, str] = {
    "quick": "the small CPU recipes: digits, MLP 64-256-256-10, Adam 5e-4, batch 64, 100 epochs; fashion-mnist, "
             "MLP 784-256-10, Adam 1e-3, batch 128, 50 epochs; no augmentation",
    "lend-paper": "LEND paper: ResNet-18, SGD 0.05 m0.9 wd5e-4, batch 256, 200 epochs, lr/10 at 100, crop+flip",
    "original": "each method's own paper recipe where its card states one, and its paper's network on the "
                "datasets its code ran; else lend-paper (quick on digits). Co-teaching, JoCoR, SIGUA: epochs "
                "of at most 401 full batches (max_steps_per_epoch, drop_last), as their main.py",
    "jocor-paper": "JoCoR on MNIST (and the same recipe on fashion-mnist): 784-256-10 MLP, Adam 1e-3, batch 128, "
                   "199 epochs (main.py's n_epoch=200), linear decay from 80",
    "plc-paper": "PLC: Animal-10N VGG-19-BN from scratch, SGD 0.1 x0.2 at 50/75 of 100, flip; "
                 "Food-101N ImageNet ResNet-50 (--pretrained), SGD 0.002, batch 32, 30 epochs, lr/10 at 10/20",
    "causalnl-paper": "CausalNL's code on Fashion-MNIST (a GPU recipe): torchvision-layout ResNet-18 with a 1-channel "
                      "stem, Adam 1e-3, batch 128 (drop_last), 150 epochs, crop+flip of transposed images, "
                      "no normalisation; compare with --noise inst:R",
    "dividemix-paper": "DivideMix on Clothing1M: ImageNet ResNet-50 (--pretrained), SGD 0.002 m0.9 wd1e-3, batch 32, "
                       "80 epochs of 32k class-balanced samples, lr/10 at 40",
}

# (protocol, dataset) -> recipe.  Datasets not listed use the protocol's default entry (None).
_RECIPES: dict[tuple[str, str | None], Recipe] = {
    ("quick", "digits"): QUICK_DIGITS,
    ("quick", "fashion-mnist"): QUICK_FASHION_MNIST,
    ("lend-paper", None): LEND_PAPER,
}

# On digits `original` keeps these fields of the quick recipe (the data handling and the
# length that suit an 8x8 MLP) and takes the method's optimiser and schedule, its time points
# scaled to the quick length.
_DIGITS_KEPT_FIELDS = ("model", "epochs", "batch_size", "augment", "normalize", "val_fraction",
                       "max_steps_per_epoch", "drop_last")


def original_recipes() -> dict[str, OriginalRecipe]:
    """Every registered method that declares its own paper recipe, by name."""
    return {name: get_method(name).original for name in method_names() if get_method(name).original is not None}


def method_recipe(method: str, dataset: str) -> dict | None:
    """The fields the ``original`` protocol replaces for ``method`` on ``dataset`` (None: none),
    as the method's file declares them (its ``original`` OriginalRecipe)."""
    original = get_method(method).original
    return original.for_dataset(dataset)[0] if original is not None else None


def _scaled_to(fields: dict, method_epochs: int, epochs: int) -> dict:
    """The schedule's time points moved to the same fraction of a run of ``epochs``."""
    scale = epochs / method_epochs
    out = dict(fields)
    if "decay_start" in out:
        out["decay_start"] = max(1, round(out["decay_start"] * scale))
    if out.get("milestones"):
        out["milestones"] = tuple(max(1, round(m * scale)) for m in out["milestones"])
    return out

DEFAULT_PROTOCOL = {"digits": "quick", "fashion-mnist": "quick"}


def register_recipe(protocol: str, dataset: str | None, recipe: Recipe) -> None:
    _RECIPES[(protocol, dataset)] = recipe


# Each real dataset's protocol (cifar10/cifar100 take lend-paper, the default entry).
for _protocol, _dataset, _recipe in (
    ("jocor-paper", "mnist", JOCOR_MNIST),
    ("plc-paper", "animal10n", PLC_ANIMAL10N),
    ("plc-paper", "food101n", PLC_FOOD101N),
    ("dividemix-paper", "clothing1m", DIVIDEMIX_CLOTHING1M),
):
    register_recipe(_protocol, _dataset, _recipe)
    DEFAULT_PROTOCOL[_dataset] = _protocol
# A second recipe for Fashion-MNIST, not its default: quick stays the one a CPU can finish.
register_recipe("causalnl-paper", "fashion-mnist", CAUSALNL_FASHION_MNIST)
# JoCoR's MNIST recipe on the dataset with MNIST's format, sizes and pixel range.
register_recipe("jocor-paper", "fashion-mnist", JOCOR_MNIST)


def default_protocol(dataset: str) -> str:
    return DEFAULT_PROTOCOL.get(dataset, "lend-paper")


def protocol_names() -> list[str]:
    return list(PROTOCOLS)


def check_protocol_name(name: str) -> None:
    if name not in PROTOCOLS:
        raise BenchError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}")


def check_recipe_fits_dataset(recipe: Recipe, dataset, protocol: str | None = None) -> None:
    """Refuse a recipe the dataset cannot train with (one line naming the fix).

    A streamed dataset (Clothing1M, Food-101N) has no images in memory, so it cannot supply
    the training images' own normalisation statistics, nor hold out a validation split of
    them; fixed ``mean_std`` must also have one entry per image channel.
    """
    name = f"protocol {protocol}" if protocol else "the protocol"
    streamed = getattr(dataset, "train_stream", None) is not None
    if streamed and recipe.normalize and recipe.mean_std is None:
        raise BenchError(
            f"{name} normalises with the training images' own mean/std, which {dataset.name} (streamed from "
            f"JPEG files) cannot compute up front; use --protocol {default_protocol(dataset.name)}"
        )
    if streamed and recipe.val_fraction > 0:
        raise BenchError(f"{name} holds out a validation split, which streamed {dataset.name} does not support; "
                         f"use --protocol {default_protocol(dataset.name)}")
    channels = dataset.image_shape[0]
    if recipe.mean_std is not None and any(len(part) != channels for part in recipe.mean_std):
        raise BenchError(f"{name} normalises {len(recipe.mean_std[0])} channels but {dataset.name} has {channels}; "
                         f"use --protocol {default_protocol(dataset.name)}")
    from noisybench.methods.networks import check_model_fits  # torch loads slowly: only where a recipe meets a dataset

    check_model_fits(recipe.model, dataset.image_shape, dataset.name)


def _base_recipe(protocol: str, dataset: str) -> Recipe:
    if (protocol, dataset) in _RECIPES:
        return _RECIPES[(protocol, dataset)]
    if (protocol, None) in _RECIPES:
        return _RECIPES[(protocol, None)]
    raise BenchError(f"protocol {protocol!r} has no recipe for dataset {dataset!r}; use --protocol lend-paper")


def resolve_recipe(
    protocol: str,
    dataset: str,
    method: str,
    *,
    model: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
) -> Recipe:
    """The recipe a trial trains with: protocol entry, method's own recipe under
    ``original``, then the command line's --model/--epochs/--batch-size."""
    check_protocol_name(protocol)
    if protocol == "original":
        base = _base_recipe(default_protocol(dataset), dataset)
        fields = method_recipe(method, dataset)
        if fields is not None and dataset != "digits":
            base = dataclasses.replace(base, **fields)
        elif fields is not None:
            method_epochs = fields.get("epochs", base.epochs)
            fields = {k: v for k, v in fields.items() if k not in _DIGITS_KEPT_FIELDS}
            base = dataclasses.replace(base, **_scaled_to(fields, method_epochs, base.epochs))
    else:
        base = _base_recipe(protocol, dataset)
    changes = {}
    if model is not None:
        changes["model"] = model
    if epochs is not None:
        changes["epochs"] = epochs
    if batch_size is not None:
        changes["batch_size"] = batch_size
    recipe = dataclasses.replace(base, **changes)
    if recipe.schedule == "multistep" and epochs is not None and base.epochs != recipe.epochs:
        # Keep the milestones at the same fraction of training when --epochs shortens it.
        scale = recipe.epochs / base.epochs
        recipe = dataclasses.replace(recipe, milestones=tuple(max(1, round(m * scale)) for m in base.milestones))
    if recipe.schedule == "coteaching" and epochs is not None and base.epochs != recipe.epochs:
        recipe = dataclasses.replace(recipe, decay_start=max(1, round(base.decay_start * recipe.epochs / base.epochs)))
    return recipe
