"""Co-teaching: two networks, each trained on the small-loss samples its peer selects."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.methods.base import Batch, Method, MethodContext, OriginalRecipe, Resolution, StepOutput, TrialFacts
from noisybench.methods.claims import Claim, Quantity, Window, clean_rate
from noisybench.methods.registry import register
from noisybench.methods.selection import (
    check_schedule_hparams,
    forget_rate_at,
    forget_rate_schedule,
    masked_mean,
    fill_forget_rate,
    num_remembered,
    small_loss_mask,
)

# Co-teaching's own recipe (JoCoR and SIGUA copy it): Adam 0.001, batch 128, lr decaying linearly
# to 0 from epoch 80 while Adam's beta1 drops from 0.9 to 0.1 (bhanML/Co-teaching main.py).  Its
# n_epoch=200 counts an evaluation-only epoch 0, so 199 epochs are trained (see the trainer's
# lr_and_beta1).  Images enter as ToTensor() values in [0, 1]: no augmentation, no normalisation.
# Each epoch is at most 401 full batches: the train loader has drop_last=True and train() breaks
# once `i > num_iter_per_epoch` (400), so on MNIST 401 of its 468 full batches of 128 train
# (on CIFAR all 390; the cap binds there only with a smaller --batch-size).
COTEACHING_ORIGINAL = dict(
    optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, batch_size=128, epochs=199,
    schedule="coteaching", decay_start=80, milestones=(), augment=False, normalize=False,
    max_steps_per_epoch=401, drop_last=True,
)


def coteaching_losses(
    logits1: Tensor, logits2: Tensor, labels: Tensor, num_keep: int, double_division: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The cross update of Co-teaching (Han et al., NeurIPS 2018, Alg. 1 steps 4-6).

    Each net ranks the batch by its own per-sample cross-entropy and keeps the ``num_keep``
    smallest; net 1 is then trained on the samples net 2 kept, and net 2 on those net 1
    kept, so the two nets filter different errors for each other.

    Returns ``(loss1, loss2, kept_by_net1, kept_by_net2)``: the mean cross-entropy of each
    net over its peer's kept set, and the two 0/1 masks.  ``double_division`` reproduces
    bhanML/Co-teaching loss.py, which divides that mean by ``num_keep`` once more.
    """
    ce1 = F.cross_entropy(logits1, labels, reduction="none")
    ce2 = F.cross_entropy(logits2, labels, reduction="none")
    kept_by_net1 = small_loss_mask(ce1, num_keep)
    kept_by_net2 = small_loss_mask(ce2, num_keep)
    loss1 = masked_mean(ce1, kept_by_net2, num_keep)
    loss2 = masked_mean(ce2, kept_by_net1, num_keep)
    if double_division:
        loss1, loss2 = loss1 / max(num_keep, 1), loss2 / max(num_keep, 1)
    return loss1, loss2, kept_by_net1, kept_by_net2


@register("coteaching")
class CoTeaching(Method):
    """Co-teaching (Han et al., NeurIPS 2018): cross-update on the peer's small-loss samples. Code: bhanML/Co-teaching.

    Under protocol ``original`` its epochs are main.py's: at most 401 steps of full batches
    (drop_last, and the break once ``i > num_iter_per_epoch`` = 400), 401 of 468 on MNIST.
    """
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: two networks cross-update on the peer's small-loss samples (bhanML/Co-teaching)",
    }

    # main.py builds model.py's CNN on all three datasets, and starts the decay at epoch 100 on
    # CIFAR-100 (80 on MNIST and CIFAR-10).
    original = OriginalRecipe(
        COTEACHING_ORIGINAL, "Han et al. 2018, bhanML/Co-teaching main.py",
        per_dataset={
            "mnist": ({**COTEACHING_ORIGINAL, "model": "coteaching_cnn"},
                      "Han et al. 2018, bhanML/Co-teaching main.py, model.py CNN (MNIST)"),
            "cifar10": ({**COTEACHING_ORIGINAL, "model": "coteaching_cnn"},
                        "Han et al. 2018, bhanML/Co-teaching main.py, model.py CNN (CIFAR-10)"),
            "cifar100": ({**COTEACHING_ORIGINAL, "model": "coteaching_cnn", "decay_start": 100},
                         "Han et al. 2018, bhanML/Co-teaching main.py, model.py CNN (CIFAR-100: "
                         "epoch_decay_start 100)"),
        },
    )

    claims = (
        Claim("selection", "Han et al., NeurIPS 2018, Sect. 2 and the label-precision curves of Sect. 4",
              "The small-loss samples each network keeps for its peer are cleaner than the data.",
              Quantity(metric="label_precision", label="kept samples' precision"), ">", clean_rate("noisy labels"),
              window=Window("fraction", 0.5, 1.0, "the second half of training (after the forget rate's ramp)")),
    )

    @dataclass
    class Hparams:
        forget_rate: float | None = None  # τ; None: the noise rate (main.py: forget_rate = noise_rate)
        num_gradual: int = 10  # T_k, epochs of the linear ramp (main.py --num_gradual 10)
        exponent: float = 1.0  # c in τ·min(T^c/T_k, 1) (main.py --exponent 1)
        # loss.py returns sum(mean CE)/num_remember, i.e. the mean divided by the count again.
        # Off by default (the paper's mean); on to reproduce the reference code exactly.
        double_division: bool = False

        def validate(self) -> None:
            check_schedule_hparams("coteaching", self)

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        return fill_forget_rate("coteaching", hparams, facts.noise_rate)

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        # Different initialisations (ctx seeds network i separately), as the two CNN() calls
        # of the reference.  Both nets are sub-modules, so the trainer's single optimiser steps
        # both: the same as the reference's two Adam optimisers, since Adam's (and SGD's)
        # state is per parameter and loss1 reaches only net1's parameters, loss2 only net2's.
        self.net1 = ctx.build_network(0)
        self.net2 = ctx.build_network(1)
        hparams = self.hparams
        # One entry per reference epoch: evaluation-only epoch 0 plus the ctx.epochs trained ones.
        self.schedule = forget_rate_schedule(hparams.forget_rate, hparams.num_gradual, hparams.exponent, ctx.epochs + 1)

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        rate = forget_rate_at(self.schedule, epoch)
        num_keep = num_remembered(len(batch), rate)
        logits1 = self.net1(batch.images)
        logits2 = self.net2(batch.images)
        loss1, loss2, kept1, kept2 = coteaching_losses(
            logits1, logits2, batch.labels, num_keep, self.hparams.double_division
        )
        # loss1 + loss2: each term reaches one net only, so one backward gives both nets the
        # gradients of their own loss.
        return StepOutput(
            loss=loss1 + loss2,
            selected={"": kept1, "net2_": kept2},  # label_precision = the reference's pure ratio
            stats={
                "forget_rate": torch.full((), rate, device=logits1.device),
                "loss_net1": loss1.detach(),
                "loss_net2": loss2.detach(),
                # How much the peers' choices overlap: Co-teaching relies on them differing.
                "kept_agreement": (kept1 * kept2).sum() / max(num_keep, 1),
            },
        )

    def predict(self, images: Tensor) -> Tensor:
        return self.net1(images)

    def predict_extra(self, images: Tensor) -> dict[str, Tensor]:
        return {"net2": self.net2(images)}
