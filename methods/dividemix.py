"""DivideMix (Li, Socher, Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning",
ICLR 2020).  Official code: LiJunnan1992/DivideMix (Train_cifar.py, Train_clothing1M.py).

Two networks.  After a cross-entropy warm-up, every epoch each network's per-sample losses are
fitted with a two-component GMM; the samples whose clean probability exceeds p_threshold form its
labelled set, the rest its unlabelled set, and each network is then trained on the division its
PEER made (co-divide), one network after the other with its own optimiser, by MixMatch with label
co-refinement and co-guessing.  The rules are in methods/dividemix_rules.py; this class wires them
to the trainer through its epoch plan (methods/base.py EpochPlan): one pass per network, each
stepping that network's own optimiser.

Differences from the official code: the two augmented views are the trainer's crop + flip drawn
from its seeded stream (on digits, which is not augmented, both views are the same input); the
GMM is fitted on the training split only (a noisy validation split is never divided), with a
seeded random_state; a division without unlabelled samples trains on the labelled part alone
(the official loader would fail); a last batch of one sample is dropped, as everywhere in the
trainer; Table 7's lambda_u and p_threshold are filled in every protocol, not only ``original``;
the test prediction is half the sum of both networks' logits (the official adds them: the same
argmax); streamed datasets (Clothing1M) are refused, since they cannot draw the divisions.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.core.seeding import derive_seed
from noisybench.methods import dividemix_rules as rules
from noisybench.methods.base import (
    Batch,
    EpochPlan,
    Method,
    MethodContext,
    OriginalRecipe,
    Resolution,
    StepOutput,
    TrainerView,
    TrainPass,
    TrialFacts,
)
from noisybench.methods.claims import Claim, Quantity, Window, clean_rate
from noisybench.methods.registry import register

# Train_cifar.py: SGD(lr 0.02, momentum 0.9, weight_decay 5e-4), batch 64, lr /10 from epoch 150,
# `for epoch in range(num_epochs + 1)` with num_epochs 300, i.e. 301 trained epochs; crop + flip.
DIVIDEMIX_CIFAR = dict(
    optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=5e-4, batch_size=64, epochs=301,
    schedule="multistep", milestones=(150,), lr_gamma=0.1, augment=True,
)
# dataloader_cifar.py's Normalize constants.
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_MEAN_STD = ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))

# (lambda_u, p_threshold) per (dataset, noise kind) and DivideMix's noise rate: the paper's Appendix B,
# Table 7 (not in the README, in none of its versions).  Checked against the author's answers in
# LiJunnan1992/DivideMix issues #10, #15, #26 (lambda_u 0 for asym; 150 and p_threshold 0.6 at 90%).
TABLE7: dict[tuple[str, str], dict[float, tuple[float, float]]] = {
    ("cifar10", "sym"): {0.2: (0.0, 0.5), 0.5: (25.0, 0.5), 0.8: (25.0, 0.5), 0.9: (50.0, 0.6)},
    ("cifar10", "asym"): {0.4: (0.0, 0.5)},
    ("cifar100", "sym"): {0.2: (25.0, 0.5), 0.5: (150.0, 0.5), 0.8: (150.0, 0.5), 0.9: (150.0, 0.6)},
}
# Our `pair` flips are class-dependent like DivideMix's CIFAR-10 `asym`; `clean` is sym at rate 0.
KIND_AS = {"pair": "asym", "clean": "sym"}


def tabled_rate(rate: float | None, rates: tuple[float, ...]) -> float | None:
    """The table's rate a noise rate is read at: the smallest tabled rate at or above it (else the
    largest), so an untabled rate takes the setting of the next higher noise level (ours)."""
    if rate is None:
        return None
    above = [r for r in sorted(rates) if r >= rate - 1e-9]
    return above[0] if above else max(rates)


def table7_entry(dataset: str, noise_kind: str, rate: float | None) -> tuple[float, float, float] | None:
    """(tabled rate, lambda_u, p_threshold) of Table 7 for this trial, or None where it has none."""
    row = TABLE7.get((dataset, KIND_AS.get(noise_kind, noise_kind)))
    if row is None:
        return None
    at = tabled_rate(0.0 if noise_kind == "clean" else rate, tuple(row))
    return None if at is None else (at, *row[at])


@register("dividemix")
class DivideMix(Method):
    """DivideMix (Li et al., ICLR 2020): GMM co-divide + MixMatch with co-refinement/co-guessing. Code: LiJunnan1992/DivideMix."""
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: GMM co-divide, MixMatch, co-refinement and co-guessing (LiJunnan1992/DivideMix)",
    }

    needs_in_memory_data = "it trains each network on the other's labelled subset every epoch"
    optimizer_per_network = True  # Train_cifar.py: optimizer1 steps net1, optimizer2 net2
    original = OriginalRecipe(
        DIVIDEMIX_CIFAR, "Li et al. 2020, LiJunnan1992/DivideMix Train_cifar.py",
        per_dataset={
            "cifar10": ({**DIVIDEMIX_CIFAR, "model": "dividemix_preact_resnet18", "mean_std": CIFAR10_MEAN_STD},
                        "Li et al. 2020, LiJunnan1992/DivideMix Train_cifar.py, PreResNet.py ResNet18 (CIFAR-10)"),
            "cifar100": ({**DIVIDEMIX_CIFAR, "model": "dividemix_preact_resnet18", "mean_std": CIFAR100_MEAN_STD},
                         "Li et al. 2020, LiJunnan1992/DivideMix Train_cifar.py, PreResNet.py ResNet18 (CIFAR-100)"),
            # The dividemix-paper protocol is Train_clothing1M.py's recipe already.
            "clothing1m": ({}, "Li et al. 2020, LiJunnan1992/DivideMix Train_clothing1M.py (protocol dividemix-paper)"),
        },
    )

    claims = (
        Claim("division", "Li, Socher & Hoi, ICLR 2020, Sect. 3.1 (co-divide)",
              "Its clean probability (a two-component GMM on the per-sample loss) separates clean from "
              "mislabelled samples: the labelled set is cleaner than the data.",
              Quantity(metric="net1_label_precision", label="net 1's labelled set"), ">", clean_rate("noisy labels"),
              window=Window("fraction", 0.0, 1.0, "every epoch after the warm-up"), during="net1_label_precision"),
    )

    @dataclass
    class Hparams:
        alpha: float = 4.0  # Beta(alpha, alpha) of MixMatch (Train_cifar.py --alpha 4; Clothing1M 0.5)
        # None: Table 7 on CIFAR-10/100 (per noise), else 25 (Train_cifar.py --lambda_u 25)
        lambda_u: float | None = None
        # None: Table 7 on CIFAR-10/100 (0.6 at 90% noise), else 0.5 (Train_cifar.py --p_threshold 0.5)
        p_threshold: float | None = None
        temperature: float = 0.5  # sharpening T (Train_cifar.py --T 0.5)
        # None: 30 on CIFAR-100 (Train_cifar.py), 1 on Clothing1M (Train_clothing1M.py), else CIFAR-10's 10
        warm_up: int | None = None
        rampup_length: float = 16.0  # epochs of Lu's linear ramp (Train_cifar.py linear_rampup)
        # None: 5 at 90% noise (Train_cifar.py: `if args.r==0.9` averages the last 5 epochs' losses), else 1
        loss_window: int | None = None
        # None: on unless the noise is sym or clean (Train_cifar.py: NegEntropy in the warm-up if noise_mode=='asym')
        warmup_penalty: bool | None = None
        warmup_batch_factor: int = 2  # dataloader_cifar.py: the warm-up loader's batch is batch_size*2
        # Train_cifar.py mixes labelled and unlabelled samples and adds lambda_u*Lu; false: only the
        # labelled part is mixed and Lu dropped (Train_clothing1M.py, Train_webvision.py)
        mix_unlabelled: bool = True
        prior_penalty: bool = True  # the uniform-prior regulariser (DivideMix Eq. 11, Train_cifar.py)

        def validate(self) -> None:
            from noisybench.core.errors import BenchError

            if self.alpha <= 0 or self.temperature <= 0 or self.rampup_length <= 0:
                raise BenchError("dividemix: alpha, temperature and rampup_length must be > 0")
            if self.p_threshold is not None and not 0.0 <= self.p_threshold <= 1.0:
                raise BenchError(f"dividemix.p_threshold={self.p_threshold}: must be in [0, 1]")
            if (self.lambda_u is not None and self.lambda_u < 0) or (self.warm_up is not None and self.warm_up < 0):
                raise BenchError("dividemix: lambda_u and warm_up must be >= 0")
            if (self.loss_window is not None and self.loss_window < 1) or self.warmup_batch_factor < 1:
                raise BenchError("dividemix: loss_window and warmup_batch_factor must be >= 1")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        """The per-dataset and per-noise defaults of the official code and the paper's Table 7 (in
        every protocol: they are the method's hyperparameters, as Co-teaching's forget rate is)."""
        dataset, noise_kind, nominal_noise_rate = facts.dataset, facts.noise_kind, facts.noise_rate
        filled: dict[str, tuple[object, str]] = {}
        entry = table7_entry(dataset, noise_kind, nominal_noise_rate)
        where = f"Table 7 ({dataset} {KIND_AS.get(noise_kind, noise_kind)} {entry[0]:g})" if entry else ""
        if hparams.lambda_u is None:
            filled["lambda_u"] = (entry[1], where) if entry else (25.0, "Train_cifar.py --lambda_u")
        if hparams.p_threshold is None:
            filled["p_threshold"] = (entry[2], where) if entry else (0.5, "Train_cifar.py --p_threshold")
        if hparams.warm_up is None:
            warm_up = {"cifar100": (30, "Train_cifar.py (CIFAR-100)"), "clothing1m": (1, "Train_clothing1M.py")}
            filled["warm_up"] = warm_up.get(dataset, (10, "Train_cifar.py (CIFAR-10)"))
        if hparams.loss_window is None:
            # Train_cifar.py: `if args.r==0.9` -- the rate alone, whatever the noise mode (asym:0.9 too),
            # and no other rate (sym:0.85 is not read at the next tabled rate here).
            at_90 = nominal_noise_rate is not None and abs(nominal_noise_rate - 0.9) < 1e-9
            filled["loss_window"] = (5, "Train_cifar.py (r = 0.9)") if at_90 else (1, "Train_cifar.py (r != 0.9)")
        if hparams.warmup_penalty is None:
            filled["warmup_penalty"] = (noise_kind not in ("sym", "clean"), "Train_cifar.py (asym noise)")
        return Resolution(replace(hparams, **{k: v for k, (v, _) in filled.items()}),
                          {k: s for k, (_, s) in filled.items()})

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        hparams = self.hparams
        self.net1 = ctx.build_network(0)
        self.net2 = ctx.build_network(1)
        n = ctx.num_train
        # Each network's clean probability w per sample (its GMM posterior; 0 outside the split).
        self.register_buffer("clean_prob", torch.zeros(2, n, device=ctx.device))
        # The last loss_window normalised loss vectors of each network, oldest first, and how many are held.
        self.register_buffer("loss_history", torch.zeros(2, hparams.loss_window, n, device=ctx.device))
        self.register_buffer("history_count", torch.zeros((), dtype=torch.long, device=ctx.device))
        self._labelled_count = [0, 0]  # each pass's labelled samples (for its num_iter), set by the plan
        # This epoch's MixMatch draws (the method's own stream, seeded per epoch, so a resumed trial redraws them).
        self._mix_epoch: int | None = None
        self._beta_rng: np.random.Generator | None = None
        self._perm_gen: torch.Generator | None = None

    def nets(self, k: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(network k, its peer), k = 0 or 1."""
        return (self.net1, self.net2) if k == 0 else (self.net2, self.net1)

    def in_warm_up(self, epoch: int) -> bool:
        return epoch < self.hparams.warm_up

    # --- the epoch: warm-up passes, or co-divide and a pass per network on its peer's division ----
    def epoch_plan(self, epoch: int, trainer: TrainerView) -> EpochPlan:
        if self.in_warm_up(epoch):  # dataloader_cifar.py: the warm-up loader's batch is batch_size * 2
            size = self.ctx.batch_size * self.hparams.warmup_batch_factor if self.ctx.batch_size else None
            return EpochPlan(passes=(TrainPass(net=0, batch_size=size), TrainPass(net=1, batch_size=size)))
        self.co_divide(epoch, trainer)
        passes = []
        for k in (0, 1):  # net 1 learns from net 2's division, then net 2 from net 1's (Train_cifar.py)
            peer_labelled = self.labelled(1 - k)
            passes.append(TrainPass(net=k, subset=peer_labelled, companion=~peer_labelled))
        return EpochPlan(passes=tuple(passes))

    def co_divide(self, epoch: int, trainer: TrainerView) -> None:
        """Each network's clean probability per sample: a GMM on its (windowed) normalised losses."""
        idx = trainer.train_index
        labels = trainer.noisy_labels[idx]
        window = self.hparams.loss_window
        count = int(self.history_count)
        for k in (0, 1):
            logits = trainer.map_train(self.nets(k)[0])[idx]
            losses = rules.normalise_losses(F.cross_entropy(logits, labels, reduction="none"))
            row = torch.zeros(self.ctx.num_train, device=losses.device)
            row[idx] = losses
            history = self.loss_history[k]
            if count < window:
                history[count] = row
            else:
                history.copy_(torch.cat([history[1:], row[None]]))
            averaged = rules.averaged_history(history, min(count + 1, window), window)[idx]
            seed = self.own_seed("gmm", epoch, k) % 2**32  # scikit-learn takes a 32-bit random_state
            self.clean_prob[k].zero_()
            self.clean_prob[k][idx] = rules.gmm_clean_probability(averaged, seed)
        self.history_count.fill_(count + 1)
        for k in (0, 1):  # net{k+1}'s division, which trains its peer: scored against the clean labels
            trainer.report_selection(f"net{k + 1}_", self.labelled(k))
            # Read here, in the plan, not in the steps: pass k's num_iter counts its peer's labelled set.
            self._labelled_count[1 - k] = int(self.labelled(k).sum())

    def labelled(self, k: int) -> Tensor:
        return self.clean_prob[k] > self.hparams.p_threshold

    # --- steps ---------------------------------------------------------------------------------
    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        if batch.net is None:  # a batch from no pass of ours (a caller stepping by hand): both networks warm up on it
            return StepOutput(loss=self._warm_up_loss(self.net1, batch) + self._warm_up_loss(self.net2, batch))
        if self.in_warm_up(epoch):  # the plan's warm-up passes
            return StepOutput(loss=self._warm_up_loss(self.nets(batch.net)[0], batch))
        return self._mixmatch_step(batch.net, batch, epoch)

    def _warm_up_loss(self, net, batch: Batch) -> Tensor:
        """Train_cifar.py warmup: cross-entropy, plus the negative-entropy penalty under asym noise."""
        logits = net(batch.images)
        loss = F.cross_entropy(logits, batch.labels)
        return loss + rules.negative_entropy(logits) if self.hparams.warmup_penalty else loss

    def own_seed(self, *stream) -> int:
        """A seed of the method's own stream (as MethodContext.generator seeds), read without a tensor."""
        return derive_seed("method", self.ctx.seed, *stream)

    def _mix_streams(self, epoch: int) -> tuple[np.random.Generator, torch.Generator]:
        """This epoch's own draws for MixMatch, seeded by (trial, epoch): the Beta weights on the host,
        the permutations on the device (no upload per step)."""
        if self._mix_epoch != epoch:
            self._beta_rng = np.random.default_rng(self.own_seed("mix-beta", epoch))
            self._perm_gen = torch.Generator(device=self.ctx.device)
            self._perm_gen.manual_seed(self.own_seed("mix-perm", epoch))
            self._mix_epoch = epoch
        return self._beta_rng, self._perm_gen

    def _mixmatch_step(self, k: int, batch: Batch, epoch: int) -> StepOutput:
        """Train_cifar.py train(): network k on its peer's division (Algorithm 1, lines 12-27)."""
        hp, (net, peer) = self.hparams, self.nets(k)
        net.train()
        peer.eval()  # "fix one network and train the other"
        num_classes = self.ctx.num_classes
        (x2,) = batch.views(1)
        u = batch.companion
        u_views = [u.images, *u.views(1)] if u is not None else []
        with torch.no_grad():
            if u is not None:  # co-guessing: the order of the official forward passes
                probs = [torch.softmax(m(v).float(), dim=1) for m in (net, peer) for v in u_views]
                targets_u = rules.co_guess(probs, hp.temperature)
            refine_probs = [torch.softmax(net(v).float(), dim=1) for v in (batch.images, x2)]
            onehot = F.one_hot(batch.labels, num_classes).float()
            targets_x = rules.co_refine(onehot, self.clean_prob[1 - k][batch.index], *refine_probs, hp.temperature)
        beta_rng, perm_gen = self._mix_streams(epoch)
        lam = rules.mix_coefficient(hp.alpha, beta_rng)
        inputs = torch.cat([batch.images, x2, *u_views])
        targets = torch.cat([targets_x, targets_x] + ([targets_u, targets_u] if u is not None else []))
        permutation = torch.randperm(inputs.shape[0], generator=perm_gen, device=perm_gen.device)
        num_x = 2 * len(batch)
        mixed_inputs, mixed_targets = rules.mixmatch(inputs, targets, lam, permutation,
                                                     None if hp.mix_unlabelled else num_x)
        logits = net(mixed_inputs).float()
        loss_x, loss_u = rules.semi_supervised_losses(logits[:num_x], mixed_targets[:num_x],
                                                      logits[num_x:], mixed_targets[num_x:])
        # Train_cifar.py: current = epoch + batch_idx / num_iter, num_iter = labelled // batch_size + 1.
        num_iter = self._labelled_count[k] // (self.ctx.batch_size or len(batch)) + 1
        weight = rules.unlabelled_weight(epoch + batch.step / num_iter, hp.warm_up, hp.lambda_u, hp.rampup_length)
        penalty = rules.uniform_prior_penalty(logits) if hp.prior_penalty else logits.new_zeros(())
        loss = loss_x + weight * loss_u + penalty if hp.mix_unlabelled else loss_x + penalty
        return StepOutput(loss=loss, stats={
            "loss_x": loss_x.detach(), "loss_u": loss_u.detach(),
            "unlabelled_weight": logits.new_full((), weight), "prior_penalty": penalty.detach(),
        })

    # --- evaluation ------------------------------------------------------------------------------
    def predict(self, images: Tensor) -> Tensor:
        return rules.ensemble_logits(self.net1(images), self.net2(images))  # Train_cifar.py test()

    def predict_extra(self, images: Tensor) -> dict[str, Tensor]:
        return {"net1": self.net1(images), "net2": self.net2(images)}
