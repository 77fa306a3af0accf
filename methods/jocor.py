"""JoCoR: two networks trained jointly on the small-loss samples of one co-regularised loss."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.core.errors import BenchError
from noisybench.methods.base import Batch, Method, MethodContext, OriginalRecipe, Resolution, StepOutput, TrialFacts
from noisybench.methods.coteaching import COTEACHING_ORIGINAL
from noisybench.methods.claims import Claim, Quantity, Window, clean_rate
from noisybench.methods.registry import register
from noisybench.methods.selection import (
    check_schedule_hparams,
    forget_rate_at,
    forget_rate_schedule,
    fill_forget_rate,
    masked_mean,
    num_remembered,
    small_loss_mask,
)


def kl_per_sample(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(softmax(q) ‖ softmax(p)) per sample, as hongxin001/JoCoR loss.py's
    ``kl_div(log_softmax(p), softmax(q))`` summed over classes; gradients reach both inputs.

    The value is torch's ``kl_div`` term for term (``xlogy(t, t) - t·log p``), but where a
    probability of softmax(q) underflows to exactly 0 (logits more than ~104 apart in float32)
    its gradient is 0 here, as the kl_div of the PyTorch 1.x that JoCoR's code ran on made it
    (its own target backward, zero where the target is 0).  Today's kl_div differentiates
    ``xlogy(t, t)`` through its second argument as t/t = 0/0: a finite loss with NaN gradients
    that turned every weight NaN (JoCoR on Fashion-MNIST, pair:0.45, epoch 26).
    """
    log_p = F.log_softmax(logits_p, dim=1)
    target = F.softmax(logits_q, dim=1)
    # The cross term is built before the entropy term, as kl_div's own code builds them: the
    # gradients then add up in the same order and are bit-identical wherever they were finite.
    cross = target * log_p
    # 1 where the target is 0: xlogy(0, 1) = 0 is the same value, and its gradient 0/1 = 0.
    target_in_log = torch.where(target > 0, target, torch.ones_like(target))
    return (torch.xlogy(target, target_in_log) - cross).sum(dim=1)


def jocor_sample_losses(logits1: Tensor, logits2: Tensor, labels: Tensor, co_lambda: float) -> Tensor:
    """JoCoR's joint loss per sample (Wei et al., CVPR 2020, Eq. 2-5):

        ℓ_i = (1 − λ)(CE(p1_i, ỹ_i) + CE(p2_i, ỹ_i)) + λ (KL(p2_i ‖ p1_i) + KL(p1_i ‖ p2_i)).

    The symmetric KL pulls the two nets' predictions together (co-regularisation); nothing is
    detached, so both nets receive the gradient of both KL terms.
    """
    ce1 = F.cross_entropy(logits1, labels, reduction="none")
    ce2 = F.cross_entropy(logits2, labels, reduction="none")
    agreement = kl_per_sample(logits1, logits2) + kl_per_sample(logits2, logits1)
    return (1 - co_lambda) * (ce1 + ce2) + co_lambda * agreement


def jocor_loss(logits1: Tensor, logits2: Tensor, labels: Tensor, co_lambda: float, num_keep: int
               ) -> tuple[Tensor, Tensor]:
    """(mean joint loss over the ``num_keep`` samples with the smallest joint loss, their 0/1 mask).

    Unlike Co-teaching there is no cross update: one selection from the joint loss trains both nets.
    """
    losses = jocor_sample_losses(logits1, logits2, labels, co_lambda)
    kept = small_loss_mask(losses, num_keep)
    return masked_mean(losses, kept, num_keep), kept


@register("jocor")
class JoCoR(Method):
    """JoCoR (Wei et al., CVPR 2020): joint loss with symmetric-KL co-regularisation, small-loss selection. Code: hongxin001/JoCoR.

    Reported: ``test_acc`` is net 1's accuracy and ``test_acc_net2`` net 2's; the paper and main.py
    report the mean of the two nets over the last 10 epochs, so a comparison with JoCoR's published
    numbers should average both columns.  co_lambda is 0.9 in every protocol (the README's 0.85 for
    CIFAR-100 and 0.65 for sym-80 are not applied).

    Under protocol ``original`` its epochs are main.py's (at most 401 steps of full batches, as
    Co-teaching's) and there are 199 of them, as under ``jocor-paper``: main.py trains
    ``range(1, n_epoch)`` with n_epoch = 200 after an evaluation-only epoch 0.
    """
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: joint CE + symmetric KL, small-loss selection, finite where a probability is 0",
    }

    # Co-teaching's recipe.  main.py: model_type "mlp" (model/cnn.py MLPNet) on MNIST, "cnn"
    # (model/cnn.py CNN) on CIFAR; the decay from epoch 100 on CIFAR-100.
    original = OriginalRecipe(
        COTEACHING_ORIGINAL, "Wei et al. 2020, hongxin001/JoCoR (Co-teaching's recipe)",
        per_dataset={
            "mnist": ({**COTEACHING_ORIGINAL, "model": "mlp1"},
                      "Wei et al. 2020, hongxin001/JoCoR main.py, model/cnn.py MLPNet (MNIST)"),
            "cifar10": ({**COTEACHING_ORIGINAL, "model": "jocor_cnn"},
                        "Wei et al. 2020, hongxin001/JoCoR main.py, model/cnn.py CNN (CIFAR-10)"),
            "cifar100": ({**COTEACHING_ORIGINAL, "model": "jocor_cnn", "decay_start": 100},
                         "Wei et al. 2020, hongxin001/JoCoR main.py, model/cnn.py CNN (CIFAR-100: "
                         "epoch_decay_start 100)"),
        },
    )

    claims = (
        Claim("selection", "Wei et al., CVPR 2020, Sect. 3 and the label-precision curves of Sect. 4",
              "The small-loss samples its joint loss keeps are cleaner than the data.",
              Quantity(metric="label_precision", label="kept samples' precision"), ">", clean_rate("noisy labels"),
              window=Window("fraction", 0.5, 1.0, "the second half of training (after the forget rate's ramp)")),
        Claim("agreement", "Wei et al., CVPR 2020, Sect. 3 (co-regularisation)",
              "Its co-regularisation makes the two networks come to agree.",
              Quantity(metric="net_disagreement", window=Window("fraction", 0.75, 1.0, "the last quarter"),
                       label="disagreement, last quarter"), "<",
              Quantity(metric="net_disagreement", window=Window("fraction", 0.0, 0.25, "the first quarter"),
                       label="disagreement, first quarter")),
    )

    @dataclass
    class Hparams:
        # τ; None: the noise rate, halved under asym noise (algorithm/jocor.py: noise_rate / 2
        # for noise_type == "asymmetric", since only part of the classes flip).
        forget_rate: float | None = None
        # λ: the code default is 0.1, but the README's tuned value for CIFAR-10 sym-20, sym-50
        # and asym-40 is 0.9 (0.65 for sym-80, 0.85 for CIFAR-100); the card takes 0.9.
        co_lambda: float = 0.9
        num_gradual: int = 10  # T_k (main.py --num_gradual 10, as Co-teaching)
        exponent: float = 1.0  # c (main.py --exponent 1)

        def validate(self) -> None:
            check_schedule_hparams("jocor", self)
            if not 0.0 <= self.co_lambda <= 1.0:
                raise BenchError(f"--hp jocor.co_lambda={self.co_lambda}: must lie in [0, 1]")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        """τ, as algorithm/jocor.py derives it: the noise rate, halved under asym noise."""
        if facts.noise_kind == "asym" and facts.noise_rate is not None:
            return fill_forget_rate("jocor", hparams, facts.noise_rate / 2,
                                    "half the nominal noise rate (hongxin001/JoCoR algorithm/jocor.py, asymmetric)")
        return fill_forget_rate("jocor", hparams, facts.noise_rate,
                                "the nominal noise rate (hongxin001/JoCoR algorithm/jocor.py: forget_rate = noise_rate)")

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        # Two differently initialised nets; the reference already uses one Adam over both
        # nets' parameters, which is what the trainer's single optimiser does.
        self.net1 = ctx.build_network(0)
        self.net2 = ctx.build_network(1)
        hparams = self.hparams
        self.forget_rate = hparams.forget_rate
        # One entry per reference epoch: evaluation-only epoch 0 plus the ctx.epochs trained ones.
        self.schedule = forget_rate_schedule(self.forget_rate, hparams.num_gradual, hparams.exponent, ctx.epochs + 1)

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        rate = forget_rate_at(self.schedule, epoch)
        num_keep = num_remembered(len(batch), rate)
        logits1 = self.net1(batch.images)
        logits2 = self.net2(batch.images)
        loss, kept = jocor_loss(logits1, logits2, batch.labels, self.hparams.co_lambda, num_keep)
        with torch.no_grad():
            disagreement = (logits1.argmax(dim=1) != logits2.argmax(dim=1)).float().mean()
        return StepOutput(
            loss=loss,
            selected={"": kept},  # one selection trains both nets (the reference's pure ratio)
            stats={
                "forget_rate": torch.full((), rate, device=logits1.device),
                # Co-regularisation should drive this towards 0.
                "net_disagreement": disagreement,
            },
        )

    def predict(self, images: Tensor) -> Tensor:
        return self.net1(images)

    def predict_extra(self, images: Tensor) -> dict[str, Tensor]:
        return {"net2": self.net2(images)}
