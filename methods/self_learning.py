"""Deep Self-Learning with multiple prototypes (SMP; Han, Luo & Wang, "Deep Self-Learning From
Noisy Labels", ICCV 2019).  No official code; hatiparallel/DSLFNL is unofficial.

After a plain cross-entropy warm-up, every epoch starts with a label-correction phase: per class,
p prototypes are elected among m sampled images by density and diversity of their penultimate
features, and every training sample is relabelled to the class whose prototypes it resembles most
(mean cosine similarity).  The training phase then minimises (1 - alpha) CE(noisy) + alpha CE(corrected).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.methods.base import (
    Batch,
    EpochPlan,
    Method,
    MethodContext,
    Resolution,
    StepOutput,
    TrainerView,
    TrialFacts,
)
from noisybench.methods.claims import Claim, Quantity, Window, clean_rate
from noisybench.methods.registry import register


def density_and_diversity(sims: Tensor, density_quantile: float = 0.4) -> tuple[Tensor, Tensor]:
    """SMP's density rho and diversity eta of m samples from their cosine similarities S (m x m)
    (Han et al., ICCV 2019, Sect. 3.2).

    S_c = the entry at the top-``density_quantile`` position of S's entries sorted in descending
    order (0-based position int(q * m^2), diagonal included); rho_i = sum_j sign(S_ij - S_c);
    eta_i = max S_ij over the j with rho_j > rho_i, or min_j S_ij where rho_i is the maximum.
    """
    flat = sims.flatten()
    position = min(int(density_quantile * flat.numel()), flat.numel() - 1)
    s_c = torch.kthvalue(flat, flat.numel() - position).values  # kthvalue counts from the smallest
    rho = torch.sign(sims - s_c).sum(dim=1)
    denser = rho[None, :] > rho[:, None]  # [i, j]: sample j is denser than sample i
    eta = torch.where(denser, sims, torch.full_like(sims, -torch.inf)).amax(dim=1)
    return rho, torch.where(rho == rho.max(), sims.amin(dim=1), eta)


def elect_prototypes(features: Tensor, num_prototypes: int, density_quantile: float = 0.4,
                     diversity_threshold: float = 0.95) -> Tensor:
    """Indices of one class's prototypes among its m sampled features (SMP, ICCV 2019, Sect. 3.2):
    the ``num_prototypes`` samples of highest density rho among those with diversity
    eta < ``diversity_threshold`` (dense, yet unlike any denser sample), densest first, ties by
    position; if none qualifies, the densest sample alone."""
    unit = F.normalize(features.float(), dim=1)
    rho, eta = density_and_diversity(unit @ unit.T, density_quantile)
    order = torch.sort(-rho, stable=True).indices
    chosen = order[(eta < diversity_threshold)[order]][:num_prototypes]
    return chosen if chosen.numel() > 0 else order[:1]


def relabel_by_prototypes(features: Tensor, prototypes: Tensor, prototype_mask: Tensor) -> Tensor:
    """SMP's corrected labels: argmax_c of the mean cosine similarity between each sample's
    features (N, d) and class c's prototypes (C, P, d); ``prototype_mask`` (C, P) marks the real
    prototypes (classes may have fewer than P; a class with none is never chosen)."""
    sims = torch.einsum("nd,cpd->ncp", F.normalize(features.float(), dim=1), F.normalize(prototypes.float(), dim=2))
    counts = prototype_mask.sum(dim=1)
    mean = (sims * prototype_mask).sum(dim=2) / counts.clamp_min(1)
    return mean.masked_fill(counts == 0, -torch.inf).argmax(dim=1)


@register("self_learning")
class SelfLearning(Method):
    """Deep Self-Learning (Han et al., ICCV 2019): prototype-corrected labels mixed into the loss."""
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: prototype-corrected labels mixed into the loss after a warm-up",
    }

    claims = (
        Claim("correction", "Han, Luo & Wang, ICCV 2019, Table 2 (Clothing1M: 61.74% noisy, 74.38% after the "
                            "first correction, 77.36% at the end)",
              "Its prototype-corrected labels are more accurate than the noisy labels.",
              Quantity(metric="corrected_acc", label="corrected labels"), ">", clean_rate("noisy labels"),
              window=Window("fraction", 0.0, 1.0, "every epoch after the warm-up"), during="corrected_acc"),
    )

    @dataclass
    class Hparams:
        # The card gives no warm-up length; None: 10% of the protocol's epochs (10 of quick's 100,
        # 20 of lend-paper's 200), by when plain CE on digits has fit the clean majority but not yet
        # memorised the noise (standard sym:0.4 peaks around epochs 13-21).
        start_epoch: int | None = None
        alpha: float = 0.5  # weight of the corrected labels (the deck's ablation)
        num_samples: int = 1280  # m per class (paper Table 3: 320-2560 all work); capped by the class size
        num_prototypes: int = 8  # p per class (paper)
        density_quantile: float = 0.4  # S_c at the top-40% position (paper)
        diversity_threshold: float = 0.95  # prototypes need eta < 0.95 (paper)

        def validate(self) -> None:
            from noisybench.core.errors import BenchError

            if not 0.0 <= self.alpha <= 1.0:
                raise BenchError(f"self_learning.alpha={self.alpha}: must lie in [0, 1]")
            if self.num_samples < 1 or self.num_prototypes < 1 or not 0.0 < self.density_quantile < 1.0:
                raise BenchError("self_learning: num_samples >= 1, num_prototypes >= 1, 0 < density_quantile < 1")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        if hparams.start_epoch is not None:
            return Resolution(hparams)
        return Resolution(replace(hparams, start_epoch=max(1, round(0.1 * facts.epochs))),
                          {"start_epoch": f"10% of the protocol's {facts.epochs} epochs (ours: the card gives none)"})

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)
        self.start_epoch = self.hparams.start_epoch
        self.register_buffer("corrected", torch.zeros(ctx.num_train, dtype=torch.long, device=ctx.device))
        self.corrections = 0  # label-correction passes done; in the checkpoint as extra state
        self.correction_stats: dict[str, float] = {}

    def get_extra_state(self) -> dict:
        return {"corrections": self.corrections}

    def set_extra_state(self, state: dict) -> None:
        self.corrections = int(state["corrections"])

    def correcting(self, epoch: int) -> bool:
        return epoch >= self.start_epoch

    def epoch_plan(self, epoch: int, trainer: TrainerView) -> EpochPlan:
        """A plain epoch; from ``start_epoch`` on, its labels corrected first.  Round = label-correction
        passes so far (0 during the warm-up)."""
        if self.correcting(epoch):
            self.correct_labels(epoch, trainer)
        return EpochPlan(round=self.corrections, phase="self-learning" if self.corrections > 0 else "warm-up")

    def correct_labels(self, epoch: int, trainer: TrainerView) -> None:
        """The label-correction phase: prototypes elected per class on the embedded training set."""
        features, _ = trainer.embed_train()
        index, noisy = trainer.train_index, trainer.noisy_labels
        # Sampling keys from the trial's generator for this epoch: m random members per class.
        keys = torch.rand(features.shape[0], generator=self.ctx.generator(epoch)).to(features.device)
        in_split = torch.zeros(features.shape[0], dtype=torch.bool, device=features.device)
        in_split[index] = True
        p = self.hparams.num_prototypes
        prototypes = features.new_zeros(self.ctx.num_classes, p, features.shape[1])
        mask = torch.zeros(self.ctx.num_classes, p, dtype=torch.bool, device=features.device)
        for c in range(self.ctx.num_classes):
            members = torch.nonzero(in_split & (noisy == c)).flatten()
            if members.numel() == 0:
                continue
            sampled = members[torch.argsort(keys[members])[: self.hparams.num_samples]]
            chosen = sampled[elect_prototypes(features[sampled], p, self.hparams.density_quantile,
                                              self.hparams.diversity_threshold)]
            prototypes[c, : chosen.numel()] = features[chosen]
            mask[c, : chosen.numel()] = True
        self.corrected.copy_(relabel_by_prototypes(features, prototypes, mask))
        self.corrections += 1
        changed = (self.corrected[index] != noisy[index]).float().mean()
        self.correction_stats = {"relabel_changed_fraction": float(changed),
                                 "prototypes_per_class": float(mask.sum()) / self.ctx.num_classes}

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.net(batch.images)
        noisy_loss = F.cross_entropy(logits, batch.labels)
        if not self.correcting(epoch):
            return StepOutput(loss=noisy_loss)
        corrected = self.corrected[batch.index]
        alpha = self.hparams.alpha
        loss = (1.0 - alpha) * noisy_loss + alpha * F.cross_entropy(logits, corrected)
        return StepOutput(loss=loss, relabelled={"corrected": corrected})

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)

    def on_epoch_end(self, epoch: int, trainer: TrainerView) -> dict[str, float]:
        stats, self.correction_stats = self.correction_stats, {}
        return stats
