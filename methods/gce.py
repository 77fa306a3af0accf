"""GCE: the generalized cross-entropy L_q, optionally truncated with per-sample pruning weights."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisybench.core.errors import BenchError
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
from noisybench.methods.claims import Claim, Quantity, Window
from noisybench.methods.registry import register

# GCE's recipe on CIFAR-10 (AlanChou/Truncated-Loss main.py and README): SGD 0.01, momentum 0.9,
# wd 1e-4, batch 128, 120 epochs, lr x0.1 at 40 and 80, crop+flip, normalised.  CIFAR-100: 150
# epochs, x0.1 at 80 and 120.  Its network is models/resnet.py's ResNet-34 (our resnet34).
GCE_ORIGINAL = dict(
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=120,
    schedule="multistep", milestones=(40, 80), lr_gamma=0.1, augment=True, normalize=True,
)

def lq_loss(logits: Tensor, labels: Tensor, q: float) -> Tensor:
    """L_q(f(x), y) = (1 − p_y^q) / q per sample (Zhang & Sabuncu, "Generalized cross entropy
    loss for training deep neural networks with noisy labels", NeurIPS 2018, Eq. 6).

    The negative Box-Cox transform of p_y: cross-entropy as q → 0, MAE (up to a factor) at
    q = 1; in between it keeps CE's fast fitting while bounding each sample's loss by 1/q.
    p_y^q is computed as exp(q · log p_y), which is finite even when p_y underflows.
    """
    log_p_label = F.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return (1 - torch.exp(q * log_p_label)) / q


def lq_threshold(q: float, k: float) -> float:
    """L_q(k) = (1 − k^q) / q: the loss of a sample whose label probability is exactly k."""
    return (1 - k**q) / q


def truncated_lq_loss(logits: Tensor, labels: Tensor, weights: Tensor, q: float, k: float) -> Tensor:
    """Truncated L_q (Zhang & Sabuncu 2018, Eq. 9 and 11), averaged over the batch:

        mean_i  v_i · (L_q(f(x_i), y_i) − L_q(k))

    with v_i ∈ {0, 1} the pruning weights: a pruned sample (v_i = 0) contributes the constant
    L_q(k) in the paper, i.e. nothing to the gradient.  Averaged, not summed, as in
    AlanChou/Truncated-Loss (the learning rate absorbs the scale).
    """
    return (weights * (lq_loss(logits, labels, q) - lq_threshold(q, k))).mean()


def truncation_weights(logits: Tensor, labels: Tensor, q: float, k: float) -> Tensor:
    """v_i = 1 where L_q < L_q(k), i.e. the label probability exceeds k; else 0 (Eq. 11's
    minimisation over v for fixed θ).  Strict, as the reference's ``torch.gt(Lqk, Lq)``."""
    return (lq_loss(logits, labels, q) < lq_threshold(q, k)).float()


def zero_gradient_term(network: nn.Module) -> Tensor:
    """0 · Σ parameters: a term that gives every parameter of ``network`` an all-zero gradient
    (present, not None), so that the optimiser still steps it on momentum and weight decay alone --
    what PyTorch 1.2's ``zero_grad()`` (zeroing, not freeing, the gradients) left in the reference."""
    return sum((0.0 * p).sum() for p in network.parameters() if p.requires_grad)


@register("gce")
class GCE(Method):
    """GCE (Zhang & Sabuncu, NeurIPS 2018): the L_q loss, q=0.7; truncated=True prunes low-confidence samples. Code: AlanChou/Truncated-Loss.

    In a pruning epoch the network trains, as the paper means.  ``reference_pruning_bug=True``
    reproduces AlanChou/Truncated-Loss main.py instead: there train() rebinds ``net`` to a copy
    reloaded from checkpoint/current_net (the network as the last epoch left it) while the SGD
    built in main() holds the original's parameters, so the copy computes the loss (in train mode,
    its BatchNorm statistics discarded with it) and is never stepped, and the original -- the
    network main() evaluates and saves -- gets ``optimizer.step()`` on zeroed gradients: momentum
    and weight decay move it, no gradient does, and its BatchNorm statistics stay as they were.
    """
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: the L_q loss; truncated=True prunes as AlanChou/Truncated-Loss",
    }

    # The reference code has no MNIST: there its optimiser and schedule, with MNIST's own network
    # and data handling (jocor-paper's mlp1; no crop+flip -- a flipped digit is another glyph).
    original = OriginalRecipe(
        GCE_ORIGINAL, "Zhang & Sabuncu 2018, AlanChou/Truncated-Loss README (CIFAR-10)",
        per_dataset={
            "mnist": ({**GCE_ORIGINAL, "model": "mlp1", "augment": False, "normalize": False},
                      "Zhang & Sabuncu 2018, AlanChou/Truncated-Loss main.py (its CIFAR optimiser and schedule; "
                      "MNIST unaugmented)"),
            "cifar10": ({**GCE_ORIGINAL, "model": "resnet34"},
                        "Zhang & Sabuncu 2018, AlanChou/Truncated-Loss README, models/resnet.py ResNet34 "
                        "(CIFAR-10)"),
            "cifar100": ({**GCE_ORIGINAL, "epochs": 150, "milestones": (80, 120), "model": "resnet34"},
                         "Zhang & Sabuncu 2018, AlanChou/Truncated-Loss README, models/resnet.py ResNet34 "
                         "(CIFAR-100)"),
        },
    )

    claims = (
        Claim("pruning", "Zhang & Sabuncu, NeurIPS 2018, Sect. 3.3 (the truncated L_q loss)",
              "What the truncation prunes (label probability below k) is noisier than what it keeps.",
              Quantity(metric="pruned_label_precision", label="pruned samples' precision"), "<",
              Quantity(metric="label_precision", label="kept samples' precision"),
              window=Window("fraction", 0.0, 1.0, "every epoch after the first pruning"),
              during="pruned_label_precision", needs=(("truncated", True),)),
    )

    @dataclass
    class Hparams:
        q: float = 0.7  # paper Sect. 4 and the reference's TruncatedLoss(q=0.7)
        k: float = 0.5  # truncation threshold on p_y (paper Sect. 4, TruncatedLoss(k=0.5))
        # Plain L_q by default: the LEND paper's comparison uses GCE without truncation.
        truncated: bool = False
        # First epoch (1-based) whose start recomputes the weights; None: 40 below 100 classes,
        # 80 otherwise (the reference README: --start_prune 40 on CIFAR-10, 80 on CIFAR-100).
        start_prune: int | None = None
        prune_every: int = 10  # main.py: at the start of every epoch with (epoch+1) % 10 == 0
        # The reference recomputes the weights by iterating its *training* loader, so the
        # pass sees the training augmentation (when the recipe has one); False: clean images.
        prune_on_augmented: bool = True
        # See the class docstring: in each pruning epoch the evaluated network gets no gradient step.
        reference_pruning_bug: bool = False  # AlanChou/Truncated-Loss main.py train(); False: the network trains

        def validate(self) -> None:
            if not 0.0 < self.q <= 1.0:
                raise BenchError(f"--hp gce.q={self.q}: must lie in (0, 1] (q -> 0 is cross-entropy; use standard)")
            if not 0.0 < self.k < 1.0:
                raise BenchError(f"--hp gce.k={self.k}: must lie in (0, 1) (a threshold on the label probability)")
            if self.start_prune is not None and self.start_prune < 1:
                raise BenchError(f"--hp gce.start_prune={self.start_prune}: must be at least 1 (a 1-based epoch)")
            if self.prune_every < 1:
                raise BenchError(f"--hp gce.prune_every={self.prune_every}: must be at least 1")
            if self.reference_pruning_bug and not self.truncated:
                raise BenchError("--hp gce.reference_pruning_bug=true needs gce.truncated=true "
                                 "(plain GCE has no pruning epochs)")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        if hparams.start_prune is not None:
            return Resolution(hparams)
        start, where = ((80, "AlanChou/Truncated-Loss README: --start_prune 80 on CIFAR-100 (100 classes)")
                        if (facts.num_classes or 0) >= 100 else
                        (40, "AlanChou/Truncated-Loss README: --start_prune 40 on CIFAR-10 (below 100 classes)"))
        return Resolution(dataclasses.replace(hparams, start_prune=start), {"start_prune": where})

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)
        self.start_prune = self.hparams.start_prune
        # v_i for every training sample, indexed by batch.index; all 1 until the first pruning.
        # A buffer, so a resumed trial keeps the weights of its last pruning.
        self.register_buffer("prune_weight", torch.ones(ctx.num_train, device=ctx.device))
        # reference_pruning_bug: the reloaded copy that computes a pruning epoch's loss.  A plain list,
        # so that it is neither a sub-module (stepped, checkpointed) nor kept past its epoch.
        self.pruning_epoch_copy: list[nn.Module] = []

    def prunes_at(self, epoch: int) -> bool:
        """Does 0-based ``epoch`` begin with a recomputation of the weights? (main.py's
        ``(epoch+1) >= start_prune and (epoch+1) % 10 == 0``.)"""
        return (self.hparams.truncated and epoch + 1 >= self.start_prune
                and (epoch + 1) % self.hparams.prune_every == 0)

    def epoch_plan(self, epoch: int, trainer: TrainerView) -> EpochPlan:
        """A plain epoch, its pruning weights recomputed first where it is a pruning epoch."""
        self.pruning_epoch_copy.clear()
        if self.prunes_at(epoch):
            self.prune(trainer)
        return EpochPlan()

    def prune(self, trainer: TrainerView) -> None:
        """main.py's pruning pass: every training sample's weight v_i from the model's prediction."""
        # The CURRENT model, unlike the reference, which reloads the checkpoint with the best
        # TEST accuracy for this pass (a test-set leak, as its README admits).
        logits = trainer.predict_train(augment=self.hparams.prune_on_augmented)
        self.prune_weight.copy_(truncation_weights(logits, trainer.noisy_labels, self.hparams.q, self.hparams.k))
        if self.hparams.reference_pruning_bug:
            self.pruning_epoch_copy.append(copy.deepcopy(self.net).requires_grad_(False).train())

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        if self.pruning_epoch_copy:  # reference_pruning_bug: the copy's loss, no gradient for self.net
            with torch.no_grad():
                logits = self.pruning_epoch_copy[0](batch.images)
        else:
            logits = self.net(batch.images)
        if not self.hparams.truncated:
            return StepOutput(loss=lq_loss(logits, batch.labels, self.hparams.q).mean())
        weights = self.prune_weight[batch.index]
        loss = truncated_lq_loss(logits, batch.labels, weights, self.hparams.q, self.hparams.k)
        if self.pruning_epoch_copy:
            loss = loss + zero_gradient_term(self.net)
        # Pruning weights as a selection: label_precision = share of clean labels among the kept.
        # pruned_label_precision: the share of clean labels among the pruned (the truncation's claim).
        return StepOutput(loss=loss, selected={"": weights, "pruned_": 1.0 - weights})

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)
