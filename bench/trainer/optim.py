"""The optimiser a recipe names, and its learning-rate schedule as a pure function of the epoch."""
from __future__ import annotations

import torch

from noisybench.bench.trainer.protocols import Recipe
from noisybench.core.errors import BenchError


def build_optimizer(recipe: Recipe, params, fused: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimiser; ``fused``: one kernel launch for all parameters (--fused)."""
    params = [p for p in params if p.requires_grad]
    fused = fused and len(params) > 0
    try:
        if recipe.optimizer == "sgd":
            return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                                   nesterov=recipe.nesterov, fused=fused or None)
        if recipe.optimizer == "adam":
            return torch.optim.Adam(params, lr=recipe.lr, betas=(recipe.momentum, 0.999),
                                    weight_decay=recipe.weight_decay, fused=fused or None)
    except (TypeError, RuntimeError) as err:
        if not fused:
            raise
        where = params[0].device.type
        raise BenchError(f"--fused on: torch {torch.__version__} has no fused {recipe.optimizer} on {where} "
                         f"({' '.join(str(err).split())[:100]}); use --fused off") from None
    raise BenchError(f"unknown optimizer {recipe.optimizer!r} in the protocol; use sgd or adam")


def lr_and_beta1(recipe: Recipe, epoch: int, lr_factor: float | None = None) -> tuple[float, float]:
    """Learning rate (and Adam's beta1) for 0-based ``epoch``: a pure function, so a resumed
    trial needs no scheduler state.  ``lr_factor`` (a method's EpochPlan.lr_factor): the method's
    own per-round schedule instead, as a factor of the recipe's base lr, with its momentum."""
    if lr_factor is not None:
        return recipe.lr * lr_factor, recipe.momentum
    if recipe.schedule == "constant":
        return recipe.lr, recipe.momentum
    if recipe.schedule == "multistep":
        drops = sum(1 for m in recipe.milestones if epoch >= m)
        return recipe.lr * recipe.lr_gamma**drops, recipe.momentum
    if recipe.schedule == "coteaching":
        # bhanML/Co-teaching main.py: alpha_plan[i] = (n_epoch - i)/(n_epoch - decay_start) * lr and
        # beta1_plan[i] = 0.1 for i >= decay_start.  Its epoch 0 only evaluates; training runs over
        # i = 1 .. n_epoch-1.  So our 0-based trained epoch e is its i = e + 1, with n_epoch =
        # recipe.epochs + 1 (epochs=199, decay_start=80 is the reference's n_epoch=200 exactly).
        i, n_epoch = epoch + 1, recipe.epochs + 1
        if i < recipe.decay_start:
            return recipe.lr, recipe.momentum
        return recipe.lr * (n_epoch - i) / max(1, n_epoch - recipe.decay_start), 0.1
    raise BenchError(f"unknown schedule {recipe.schedule!r} in the protocol")


def set_lr(optimizer: torch.optim.Optimizer, lr: float, beta1: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        if "betas" in group:
            group["betas"] = (beta1, group["betas"][1])
