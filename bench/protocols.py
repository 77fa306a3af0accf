"""Protocols: named training recipes, per dataset.

A table compares methods only when every row was trained with the same recipe, so the
default recipe is shared by all methods; ``original`` lets a method use its own paper's
recipe where its card states one (see ``METHOD_RECIPES``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.errors import BenchError


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

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


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

# Co-teaching / JoCoR / SIGUA's own recipe: Adam 0.001, batch 128, lr decaying linearly to 0 from
# epoch 80 while Adam's beta1 drops from 0.9 to 0.1 (bhanML/Co-teaching main.py; JoCoR and SIGUA
# copy it).  Their n_epoch=200 counts an evaluation-only epoch 0, so 199 epochs are trained (see
# lr_and_beta1).  Images enter as ToTensor() values in [0, 1]: no augmentation, no normalisation.
# Not reproduced: their 9-/7-layer CNNs (the model stays the base protocol's) and drop_last.
COTEACHING_ORIGINAL = dict(
    optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, batch_size=128, epochs=199,
    schedule="coteaching", decay_start=80, milestones=(), augment=False, normalize=False,
)

# GCE's recipe on CIFAR-10 (AlanChou/Truncated-Loss main.py and README): SGD 0.01, momentum 0.9,
# wd 1e-4, batch 128, 120 epochs, lr x0.1 at 40 and 80, crop+flip, normalised.  CIFAR-100: 150
# epochs, x0.1 at 80 and 120.  Its ResNet-34 is not reproduced (the base protocol's model stays).
GCE_ORIGINAL = dict(
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=120,
    schedule="multistep", milestones=(40, 80), lr_gamma=0.1, augment=True, normalize=True,
)

PROTOCOLS: dict[str, str] = {
    "quick": "the small CPU recipe for digits: MLP, Adam 5e-4, batch 64, 100 epochs, no augmentation",
    "lend-paper": "LEND paper: ResNet-18, SGD 0.05 m0.9 wd5e-4, batch 256, 200 epochs, lr/10 at 100, crop+flip",
    "original": "each method's own paper recipe where its card states one, else lend-paper (quick on digits)",
}

# (protocol, dataset) -> recipe.  Datasets not listed use the protocol's default entry (None).
_RECIPES: dict[tuple[str, str | None], Recipe] = {
    ("quick", "digits"): QUICK_DIGITS,
    ("lend-paper", None): LEND_PAPER,
}

# Method-specific overrides used by the "original" protocol, keyed by method name;
# each value is (fields to replace, source).  Filled in by the method files' cards.
METHOD_RECIPES: dict[str, tuple[dict, str]] = {
    "coteaching": (COTEACHING_ORIGINAL, "Han et al. 2018, bhanML/Co-teaching main.py"),
    "jocor": (COTEACHING_ORIGINAL, "Wei et al. 2020, hongxin001/JoCoR (Co-teaching's recipe)"),
    "sigua": (COTEACHING_ORIGINAL, "Han et al. 2020, bhanML/SIGUA scripts (Co-teaching's recipe)"),
    "gce": (GCE_ORIGINAL, "Zhang & Sabuncu 2018, AlanChou/Truncated-Loss README (CIFAR-10)"),
}

# (method, dataset) entries that replace METHOD_RECIPES[method] on that dataset.
METHOD_DATASET_RECIPES: dict[tuple[str, str], tuple[dict, str]] = {
    ("gce", "cifar100"): ({**GCE_ORIGINAL, "epochs": 150, "milestones": (80, 120)},
                          "Zhang & Sabuncu 2018, AlanChou/Truncated-Loss README (CIFAR-100)"),
}

# On digits `original` keeps these fields of the quick recipe (the data handling and the
# length that suit an 8x8 MLP) and takes the method's optimiser and schedule, its time points
# scaled to the quick length.
_DIGITS_KEPT_FIELDS = ("model", "epochs", "batch_size", "augment", "normalize", "val_fraction")


def method_recipe(method: str, dataset: str) -> dict | None:
    """The fields the ``original`` protocol replaces for ``method`` on ``dataset`` (None: none)."""
    entry = METHOD_DATASET_RECIPES.get((method, dataset)) or METHOD_RECIPES.get(method)
    return dict(entry[0]) if entry else None


def _scaled_to(fields: dict, method_epochs: int, epochs: int) -> dict:
    """The schedule's time points moved to the same fraction of a run of ``epochs``."""
    scale = epochs / method_epochs
    out = dict(fields)
    if "decay_start" in out:
        out["decay_start"] = max(1, round(out["decay_start"] * scale))
    if out.get("milestones"):
        out["milestones"] = tuple(max(1, round(m * scale)) for m in out["milestones"])
    return out


DEFAULT_PROTOCOL = {"digits": "quick"}


def default_protocol(dataset: str) -> str:
    return DEFAULT_PROTOCOL.get(dataset, "lend-paper")


def register_recipe(protocol: str, dataset: str | None, recipe: Recipe) -> None:
    _RECIPES[(protocol, dataset)] = recipe


def protocol_names() -> list[str]:
    return list(PROTOCOLS)


def check_protocol_name(name: str) -> None:
    if name not in PROTOCOLS:
        raise BenchError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}")


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
