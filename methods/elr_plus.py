"""ELR+: ELR with two networks, mixup, and targets from the other network's weight average.

Paper: Liu, Niles-Weed, Razavian, Fernandez-Granda, "Early-Learning Regularization Prevents
Memorization of Noisy Labels", NeurIPS 2020, Sect. 4 (ELR+).  Official code:
github.com/shengliu66/ELR, folder ELR_plus/ (model/loss.py ``elr_plus_loss``, trainer/trainer.py,
base/base_trainer.py, config_*.json).  Plain ELR is methods/elr.py.

Rule, for each network k in {1, 2} with weight average (EMA) w_k and the other one's EMA w_k':

    lam = max(l, 1 - l), l ~ Beta(a, a); pi a random permutation of the batch     (per network)
    t_k,i <- beta * t_k,i + (1 - beta) * softmax(f(x_i; w_k'))     on the unmixed (augmented) batch
    q_i    = lam * t_k,i + (1 - lam) * t_k,pi(i)                   the mixed target
    x'_i   = lam * x_i + (1 - lam) * x_pi(i);   y'_i = lam * e(y~_i) + (1 - lam) * e(y~_pi(i))
    y'_i  <- y'_i * q_i / ||y'_i * q_i||_1                         only with 100 classes (loss.py)
    p_i    = clamp(softmax(f(x'_i; theta_k)), 1e-4, 1 - 1e-4)
    L_k    = mean_i -<y'_i, log softmax(f(x'_i; theta_k))> + r(s) * lambda * mean_i log(1 - <q_i, p_i>)
    after the optimiser step s:  w_k <- d * w_k + (1 - d) * theta_k

with r(s) = exp(-5 (1 - min(s / coef_step, 1))^2) (1 when coef_step = 0) and the EMA decay
d = ema_alpha * exp(-5 (1 - min((s + 1) / ema_step, 1))^2), or min(1 - 1/(s + 1), ema_alpha)
with ``ema_ramp`` off.  The test prediction averages the two networks' logits (not the EMAs),
as the single-GPU path of base_trainer.py does.  The per-sample targets t_1, t_2 are buffers and
the step count is extra state, so a resumed trial goes on where it stopped.

Defaults (ELR_plus/config_*.json): beta/lambda as plain ELR's configs (0.7/3 CIFAR-10 sym,
0.9/1 asym, 0.9/7 CIFAR-100), mixup_alpha 1, ema_alpha 0.997 with the ramp over ema_step
40,000 steps, coef_step 0 below 100 classes and 40,000 from 100.  Clothing1M's config sets
ema_alpha 0.9999 without the ramp: ``--hp elr_plus.ema_alpha=0.9999,elr_plus.ema_ramp=false``.

Where ours differs from the official code:
- One batch order for both networks, summed into one loss (one optimiser over both, which is
  the same update as two, since SGD's state is per parameter); the code gives each network its
  own data loader and trains network 1 for a whole epoch, then network 2, whose targets come from
  EMA 1 as it stands at the end of network 1's epoch.  Here both train in every step.
- The EMA update runs at the start of the next step (the trainer owns the optimiser step): the
  same order of operations, except that the very last update of a run is not made (the EMAs
  only make targets; they are never evaluated).
- The EMAs start from their own random initialisations (build_network(2), (3)), as the code's
  separately constructed models do; with the ramp the first decays are ~0.007, so they follow
  the networks within a few steps either way.

``original`` recipes: CIFAR-10 SGD 0.02, momentum 0.9, wd 5e-4, batch 128, 200 epochs, lr /10 at
150; CIFAR-100 250 epochs, lr /10 at 200 (config_cifar10.json, config_cifar100.json), on
PreResNet.py's PreActResNet18 (conv-BN-ReLU stem, pre-activated shortcuts, no final BN: the
network DivideMix uses too, ``dividemix_preact_resnet18``) with crop+flip, the loaders' fixed
constants and the 45,000/5,000 split; Clothing1M: config_clothing1m.json as methods/elr.py maps
it (90 epochs of 32,000 images = its 45,000 steps of 64).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisybench.core.errors import BenchError
from noisybench.core.seeding import derive_seed
from noisybench.methods.base import (
    Batch,
    EpochPlan,
    Method,
    MethodContext,
    OriginalRecipe,
    Resolution,
    StepOutput,
    TrainerView,
    TrialFacts,
)
from noisybench.methods.elr import (
    CIFAR10_MEAN_STD,
    CIFAR100_MEAN_STD,
    ELR_CLOTHING1M,
    clamped_probabilities,
    fill_beta_lambda,
    update_targets,
)
from noisybench.methods.registry import register

# ELR_plus/config_cifar10.json: SGD 0.02, momentum 0.9, wd 5e-4, batch 128, 200 epochs, MultiStepLR [150] x0.1.
ELR_PLUS_ORIGINAL = dict(
    optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=200,
    schedule="multistep", milestones=(150,), lr_gamma=0.1,
)
_CIFAR_DATA = dict(model="dividemix_preact_resnet18", augment=True, normalize=True, val_fraction=0.1)


def sigmoid_rampup(step: float, length: float) -> float:
    """exp(-5 (1 - min(step / length, 1))^2), 1 when length is 0 (ELR_plus/utils/util.py, from
    temporal ensembling's ramp-up)."""
    if length == 0:
        return 1.0
    phase = 1.0 - min(max(step, 0.0), length) / length
    return math.exp(-5.0 * phase * phase)


def ema_decay(step: int, ema_alpha: float, ema_step: float, ramp: bool) -> float:
    """The weight-average decay after optimiser step ``step`` (1-based; trainer.py
    update_ema_variables): ema_alpha ramped over ema_step steps, else min(1 - 1/(step + 1), ema_alpha)."""
    if ramp:
        return sigmoid_rampup(step + 1, ema_step) * ema_alpha
    return min(1.0 - 1.0 / (step + 1), ema_alpha)


@torch.no_grad()
def update_weight_average(average: nn.Module, net: nn.Module, decay: float) -> None:
    """w <- decay * w + (1 - decay) * theta over the parameters (not the BatchNorm statistics,
    which trainer.py leaves to each EMA network's own forward passes)."""
    averaged, current = list(average.parameters()), [p.detach() for p in net.parameters()]
    torch._foreach_mul_(averaged, decay)
    torch._foreach_add_(averaged, current, alpha=1.0 - decay)


def mix(values: Tensor, lam: float, permutation: Tensor) -> Tensor:
    """lam * v + (1 - lam) * v[pi] (mixup, Zhang et al. 2018), for images, labels or targets alike."""
    return lam * values + (1.0 - lam) * values[permutation]


def elr_plus_loss(logits: Tensor, soft_labels: Tensor, mixed_targets: Tensor, weight: float, eps: float,
                  weight_labels_by_target: bool) -> tuple[Tensor, Tensor]:
    """(loss, regulariser mean) of one network (Liu et al. 2020, ELR+; ELR_plus/model/loss.py):
    soft-label CE on the mixed labels (reweighted by the target and renormalised when
    ``weight_labels_by_target``) + weight * mean log(1 - <q, clamp(p)>), weight = r(s) * lambda."""
    if weight_labels_by_target:
        soft_labels = soft_labels * mixed_targets
        soft_labels = soft_labels / soft_labels.sum(dim=1, keepdim=True)
    ce = -(soft_labels * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
    probs = clamped_probabilities(logits, eps)
    regulariser = torch.log(1.0 - (mixed_targets * probs).sum(dim=1)).mean()
    return ce + weight * regulariser, regulariser


@register("elr_plus")
class ELRPlus(Method):
    """ELR+ (Liu et al., NeurIPS 2020): two networks, mixup, ELR toward targets from the other's weight average. Code: shengliu66/ELR."""
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: two networks, mixup, ELR toward the other's weight-average targets (ELR_plus)",
    }

    original = OriginalRecipe(
        ELR_PLUS_ORIGINAL, "Liu et al. 2020, shengliu66/ELR ELR_plus/config_cifar10.json (its CIFAR-10 optimiser and "
                           "schedule; the code has no config for this dataset)",
        per_dataset={
            "cifar10": ({**ELR_PLUS_ORIGINAL, **_CIFAR_DATA, "mean_std": CIFAR10_MEAN_STD},
                        "Liu et al. 2020, shengliu66/ELR ELR_plus/config_cifar10.json, data_loaders.py, "
                        "PreResNet.py PreActResNet18 (CIFAR-10)"),
            "cifar100": ({**ELR_PLUS_ORIGINAL, **_CIFAR_DATA, "mean_std": CIFAR100_MEAN_STD, "epochs": 250,
                          "milestones": (200,)},
                         "Liu et al. 2020, shengliu66/ELR ELR_plus/config_cifar100.json, data_loaders.py, "
                         "PreResNet.py PreActResNet18 (CIFAR-100)"),
            "clothing1m": (ELR_CLOTHING1M,
                           "Liu et al. 2020, shengliu66/ELR ELR_plus/config_clothing1m.json (its 45,000 steps "
                           "over 32,000-image epochs; pass ema_alpha=0.9999, ema_ramp=false)"),
        },
    )

    @dataclass
    class Hparams:
        # Target momentum; None: the config's -- 0.7 (config_cifar10.json, config_clothing1m.json;
        # every noise kind but asym below 100 classes), 0.9 (config_cifar10_asym.json; config_cifar100.json).
        beta: float | None = None
        # Regulariser weight lambda; None: 3 (config_cifar10.json), 1 (config_cifar10_asym.json: asym and pair
        # noise), 7 (config_cifar100.json).
        lam: float | None = None
        mixup_alpha: float = 1.0  # config_cifar10/100/clothing1m.json mixup_alpha (webvision: 1.5)
        ema_alpha: float = 0.997  # config_cifar10/100.json ema_alpha (clothing1m: 0.9999)
        ema_ramp: bool = True  # config_cifar10/100.json ema_update (clothing1m: false)
        ema_step: int = 40000  # config_cifar10/100.json ema_step: the ramp's length in steps
        # The regulariser's ramp-up in steps; None: 0 below 100 classes (config_cifar10.json
        # coef_step), 40000 from 100 (config_cifar100.json).
        coef_step: int | None = None
        # Reweight the mixed labels by the target; None: with exactly 100 classes (loss.py's
        # `if self.num_classes == 100`).
        weight_labels_by_target: bool | None = None
        clamp: float = 1e-4  # loss.py torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)

        def validate(self) -> None:
            if self.beta is not None and not 0.0 <= self.beta < 1.0:
                raise BenchError(f"--hp elr_plus.beta={self.beta}: must lie in [0, 1) (the targets' momentum)")
            if self.lam is not None and self.lam < 0.0:
                raise BenchError(f"--hp elr_plus.lam={self.lam}: must be >= 0")
            if self.mixup_alpha <= 0.0:
                raise BenchError(f"--hp elr_plus.mixup_alpha={self.mixup_alpha}: must be > 0 (Beta(a, a))")
            if not 0.0 <= self.ema_alpha < 1.0:
                raise BenchError(f"--hp elr_plus.ema_alpha={self.ema_alpha}: must lie in [0, 1)")
            if self.ema_step < 0 or (self.coef_step is not None and self.coef_step < 0):
                raise BenchError("--hp elr_plus.ema_step and coef_step: must be >= 0 (steps; 0: no ramp)")
            if not 0.0 <= self.clamp < 0.5:
                raise BenchError(f"--hp elr_plus.clamp={self.clamp}: must lie in [0, 0.5)")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        """beta and lambda as ELR's; the ramp and the label reweighting by the number of classes."""
        resolved = fill_beta_lambda(hparams, facts.noise_kind, facts.num_classes, folder="ELR_plus")
        hparams, sources, filled = resolved.hparams, dict(resolved.sources), {}
        classes = facts.num_classes or 10
        if hparams.coef_step is None:
            filled["coef_step"], sources["coef_step"] = (
                (40000, "ELR_plus config_cifar100.json coef_step (100 classes and more)") if classes >= 100
                else (0, "ELR_plus config_cifar10.json coef_step (below 100 classes)"))
        if hparams.weight_labels_by_target is None:
            filled["weight_labels_by_target"] = classes == 100
            sources["weight_labels_by_target"] = f"ELR_plus loss.py: `if self.num_classes == 100` ({classes} classes)"
        return Resolution(dataclasses.replace(hparams, **filled), sources)

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net1, self.net2 = ctx.build_network(0), ctx.build_network(1)
        self.ema1, self.ema2 = ctx.build_network(2), ctx.build_network(3)
        for average in (self.ema1, self.ema2):
            average.requires_grad_(False)
        hparams = self.hparams
        self.beta, self.lam = hparams.beta, hparams.lam
        self.coef_step, self.weight_labels = hparams.coef_step, hparams.weight_labels_by_target
        shape = (ctx.num_train, ctx.num_classes)
        self.register_buffer("targets1", torch.zeros(shape, device=ctx.device))
        self.register_buffer("targets2", torch.zeros(shape, device=ctx.device))
        self.steps_done = 0  # optimiser steps so far (the code's global_step + local_step); extra state
        self.rng: torch.Generator | None = None
        self._beta_rng: np.random.Generator | None = None

    def networks(self) -> list[nn.Module]:
        return [self.net1, self.net2]  # the weight averages are not optimised

    def get_extra_state(self) -> dict:
        return {"steps_done": self.steps_done}

    def set_extra_state(self, state: dict) -> None:
        self.steps_done = int(state["steps_done"])

    def epoch_plan(self, epoch: int, trainer: TrainerView) -> EpochPlan:
        self._mix_streams(epoch)  # this epoch's mixup draws, the same on a resumed run
        return EpochPlan()

    def _mix_streams(self, epoch: int) -> None:
        """This epoch's own mixup draws, seeded by (trial, epoch) without reading a tensor: the Beta
        weights on the host, the permutations on the device (no upload per step)."""
        self._beta_rng = np.random.default_rng(derive_seed("method", self.ctx.seed, "mixup-beta", epoch))
        self.rng = torch.Generator(device=self.ctx.device)
        self.rng.manual_seed(derive_seed("method", self.ctx.seed, "mixup-perm", epoch))

    def draw_mixup(self, size: int) -> tuple[float, Tensor]:
        """lam = max(l, 1 - l) with l ~ Beta(a, a), and a permutation of the batch (trainer.py _mixup_data)."""
        if self.rng is None:
            self._mix_streams(0)
        lam = float(self._beta_rng.beta(self.hparams.mixup_alpha, self.hparams.mixup_alpha))
        permutation = torch.randperm(size, generator=self.rng, device=self.ctx.device)
        return max(lam, 1.0 - lam), permutation

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        hp = self.hparams
        if self.steps_done > 0:  # the update trainer.py makes right after the previous optimiser step
            decay = ema_decay(self.steps_done, hp.ema_alpha, hp.ema_step, hp.ema_ramp)
            update_weight_average(self.ema1, self.net1, decay)
            update_weight_average(self.ema2, self.net2, decay)
        self.steps_done += 1
        weight = sigmoid_rampup(self.steps_done, self.coef_step) * self.lam
        onehot = F.one_hot(batch.labels, self.ctx.num_classes).float()
        loss, out = 0.0, StepOutput(loss=torch.zeros(()))
        for name, net, teacher, store in (("", self.net1, self.ema2, self.targets1),
                                          ("net2_", self.net2, self.ema1, self.targets2)):
            with torch.no_grad():
                teacher_probs = F.softmax(teacher(batch.images).float(), dim=1)
            targets = update_targets(store[batch.index], teacher_probs, self.beta)
            store[batch.index] = targets
            lam, permutation = self.draw_mixup(len(batch))
            logits = net(mix(batch.images, lam, permutation))
            net_loss, regulariser = elr_plus_loss(logits, mix(onehot, lam, permutation), mix(targets, lam, permutation),
                                                  weight, hp.clamp, self.weight_labels)
            loss = loss + net_loss
            out.relabelled[f"{name}target"] = targets.argmax(dim=1)
            out.stats[f"{name}elr_reg"] = regulariser.detach()
        out.loss = loss
        return out

    def predict(self, images: Tensor) -> Tensor:
        return 0.5 * (self.net1(images) + self.net2(images))  # base_trainer.py's single-GPU test

    def predict_extra(self, images: Tensor) -> dict[str, Tensor]:
        return {"net1": self.net1(images), "net2": self.net2(images)}
