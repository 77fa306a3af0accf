"""LEND: label noise dilution over feature embeddings.

Zhang, Shen, Yang, Gong, "Towards harnessing feature embedding for robust learning with noisy
labels", Machine Learning 111(9):3181-3201, 2022.  Official code: zhangchuang96/lend, main.py
(``prop_label`` and the training loop).  Card: shared/methods/lend.md.

In every mini-batch the noisy labels are propagated over a kNN graph of the network's penultimate
features: a mislabelled sample surrounded by correctly labelled neighbours has its label diluted,
and its loss is down-weighted by how much of its own label survives.  The defaults reproduce the
official code (which produced the paper's figures); the paper's readings are options:
``selection=hard`` (Eq. 6), ``solver=iterate`` (Eq. 3), ``temporal=output`` (Eq. 5); and
``fallback=row`` confines the official whole-batch fallback of a batch with an isolated sample
to that sample.  Protocol ``original`` trains it as its code did on CIFAR: the official
``lend_preact_resnet18`` on unnormalised inputs; the shared default (lend-paper) is the paper's ResNet-18.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.core.errors import BenchError
from noisybench.methods.base import Batch, Method, MethodContext, OriginalRecipe, StepOutput
from noisybench.methods.claims import ALL_EPOCHS, Claim, Quantity, Window, clean_rate
from noisybench.methods.registry import register


class Dilution(NamedTuple):
    labels: Tensor  # (B, C) diluted label distributions; every row sums to 1
    fell_back: Tensor  # 0-dim float: 1.0 when any row of this batch fell back to its input, else 0.0
    fallback_rows: Tensor  # 0-dim float: the share of the batch's rows that fell back (1.0 under "batch")


def dilute(features: Tensor, label_dist: Tensor, k: int = 8, gamma: float = 3.0, alpha: float = 0.99,
           solver: str = "closed", iterations: int = 1000, fallback: str = "batch") -> Dilution:
    """Label noise dilution (LEND, Zhang et al. 2022, Sect. 4; official ``prop_label``).

    features (B, d) embeddings, label_dist (B, C) label distributions (one-hot noisy labels or a
    temporal mix).  Steps, as in the official code:
      1. kNN_k(i): the k nearest samples by squared Euclidean distance, i itself included;
      2. A_ij = [f_i . f_j]_+ ** gamma for j in kNN_k(i), j != i, else 0;
      3. W = A A^T, W <- D^-1/2 W D^-1/2 with D = diag(W 1);
      4. closed: Z = (I - alpha W)^-1 label_dist; iterate: the paper's Eq. 3 as the anchored
         propagation Z^t = alpha W Z^(t-1) + (1 - alpha) label_dist from Z^0 = label_dist, whose
         limit is (1 - alpha)(I - alpha W)^-1 label_dist, so Z^T / (1 - alpha) is returned and both
         solvers give the same labels as T grows;
      5. the fallback, then output softmax(Z).  A row of W is zero when no neighbour has a
         positive similarity (features all zero or anti-aligned to its k-1 nearest, possible
         when the features are signed, as LEND's official network's are; a batch of one).
         fallback="batch" (official): the official D = diag(W 1)^-1/2 is then inf, which makes
         every entry of D W D and so of Z NaN, and its ``if Z has NaN: Z = cur`` returns the
         input for the WHOLE batch -- here: if any row is isolated or any entry of Z is not
         finite, Z = label_dist for every row.  fallback="row" (an alternative reading): only
         the isolated rows and the rows of Z that are not finite take their label_dist row; the
         others keep their propagation (an isolated row's zero row and column of W leave the
         rest of the system untouched).  Either way an inf in Z falls back, where the official
         check (NaN only) lets it through to a NaN softmax.
    ``fell_back`` is 1.0 when any row of the batch fell back (per batch, the same in both modes);
    ``fallback_rows`` is the share of the batch's rows that did (1.0 whenever "batch" fires).
    Rules at the edges: k is clamped to B.  A positive scalar on the features cancels (the kNN
    order is unchanged and the symmetric normalisation divides out c^(4 gamma)).
    Runs in fp32 with autocast off, without a host sync.
    """
    if fallback not in ("batch", "row"):
        raise ValueError(f"fallback must be 'batch' or 'row', not {fallback!r}")
    with torch.autocast(device_type=features.device.type, enabled=False):
        feats = features.detach().float()
        given = label_dist.detach().float()
        size = feats.shape[0]
        self_mask = torch.eye(size, dtype=torch.bool, device=feats.device)
        squared_norms = (feats * feats).sum(1, keepdim=True)
        distances = squared_norms + squared_norms.T - 2 * feats @ feats.T
        # -inf on the diagonal: the sample is always one of its own k, even when rounding puts a
        # duplicate closer (the official topk includes it by distance 0).
        nearest = distances.masked_fill(self_mask, float("-inf")).topk(min(k, size), dim=1, largest=False).indices
        in_knn = torch.zeros_like(self_mask).scatter_(1, nearest, True) & ~self_mask
        similarity = torch.where(in_knn, (feats @ feats.T).clamp_min(0), 0.0)
        # Divide by the largest similarity before the power: a positive scalar cancels in the
        # normalisation (like the official /B), and it keeps A A^T finite in fp32 for large
        # features (dot products of 1e6, cubed and squared, would reach 1e36).
        similarity = similarity / similarity.amax().clamp_min(torch.finfo(torch.float32).tiny)
        affinity = similarity.pow(gamma)
        weights = affinity @ affinity.T
        degree = weights.sum(1)
        isolated = degree <= 0  # A_i = 0 (W_ii = |A_i|^2 >= every W_ij): no neighbour to dilute over
        inv_sqrt_degree = torch.where(degree > 0, degree.clamp_min(torch.finfo(torch.float32).tiny).rsqrt(), 0.0)
        weights = inv_sqrt_degree[:, None] * weights * inv_sqrt_degree[None, :]
        if solver == "closed":
            # solve_ex: torch.linalg.solve without its error check, which would sync with the host;
            # a singular system shows up as a non-finite Z and falls back below.
            system = torch.eye(size, device=feats.device) - alpha * weights
            propagated = torch.linalg.solve_ex(system, given).result
        elif solver == "iterate":
            propagated = given
            for _ in range(iterations):
                propagated = alpha * (weights @ propagated) + (1 - alpha) * given
            propagated = propagated / (1 - alpha)
        else:
            raise ValueError(f"solver must be 'closed' or 'iterate', not {solver!r}")
        failed_rows = isolated | ~torch.isfinite(propagated).all(dim=1)
        if fallback == "batch":
            failed_rows = failed_rows.any().expand(size)
        propagated = torch.where(failed_rows[:, None], given, propagated)
        return Dilution(propagated.softmax(dim=1), failed_rows.any().float(), failed_rows.float().mean())


def temporal_input(onehot: Tensor, previous: Tensor, visited: Tensor, beta: float) -> Tensor:
    """Official temporal mixing, on the dilution's input: beta * onehot(y~) + (1 - beta) * the
    sample's diluted label from its last visit (one-hot for a sample not yet visited)."""
    return torch.where(visited[:, None], beta * onehot + (1 - beta) * previous, onehot)


def temporal_output(fresh: Tensor, previous: Tensor, visited: Tensor, beta: float) -> Tensor:
    """Paper Eq. 5, on the dilution's output: Z^tau = (1 - beta) Z + beta Z^(tau-1) (Z on a first visit)."""
    return torch.where(visited[:, None], (1 - beta) * fresh + beta * previous, fresh)


def sample_weights(diluted: Tensor, noisy_labels: Tensor, selection: str) -> Tensor:
    """soft (official): w_i = Z_i[y~_i]; hard (paper Eq. 6): e_i = 1(y~_i = argmax_j Z_ij)."""
    if selection == "soft":
        return diluted.gather(1, noisy_labels[:, None]).squeeze(1)
    return (diluted.argmax(dim=1) == noisy_labels).float()


# LEND's official main.py (zhangchuang96/lend), the run behind its CIFAR figures: SGD 0.05,
# momentum 0.9, wd 5e-4, batch 256, 200 epochs, MultiStepLR([100], 0.1) (stepped from epoch 1),
# RandomCrop(32, padding=4) + flip, ToTensor with both Normalize lines commented out (inputs in
# [0, 1]), and models/preact_resnet.py's PreActResNet18.  The paper's Sect. 5.1 recipe is the
# same with "ResNet-18", which protocol lend-paper (the shared default) keeps.
LEND_ORIGINAL = dict(
    optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=256, epochs=200,
    schedule="multistep", milestones=(100,), lr_gamma=0.1, augment=True, crop_padding=4,
    model="lend_preact_resnet18", normalize=False,
)


@register("lend")
class LEND(Method):
    """LEND (Zhang et al., Machine Learning 2022): labels diluted over feature neighbours weight the loss. Code: zhangchuang96/lend."""
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: labels diluted over feature neighbours weight the loss (zhangchuang96/lend)",
    }

    # The official code loads CIFAR-10 and CIFAR-100 only; on every other dataset `original`
    # keeps the dataset's default protocol (no fields replaced).
    original = OriginalRecipe(
        {}, "Zhang et al. 2022: zhangchuang96/lend has no code for this dataset (its default protocol)",
        per_dataset={
            "cifar10": (LEND_ORIGINAL, "Zhang et al. 2022, zhangchuang96/lend main.py, data/cifar.py, "
                                       "models/preact_resnet.py PreActResNet18 (CIFAR-10)"),
            "cifar100": (LEND_ORIGINAL, "Zhang et al. 2022, zhangchuang96/lend main.py, data/cifar.py, "
                                        "models/preact_resnet.py PreActResNet18 (CIFAR-100)"),
        },
    )

    claims = (
        Claim("dilution", "Zhang et al., Machine Learning 2022, Sect. 1 and Fig. 4",
              "Early in training, labels diluted over feature-space neighbours are more accurate than the "
              "model's own predictions.",
              Quantity(metric="diluted_label_acc", label="diluted labels"), ">",
              Quantity(metric="model_pred_acc", label="model predictions"),
              # The paper says "early stage" and names no epoch; its recipe drops the lr at half-way.
              window=Window("fraction", 0.0, 0.25, "the first quarter of training (the paper's early stage)")),
        Claim("selection", "Zhang et al., Machine Learning 2022, Sect. 4 (Eq. 6)",
              "The samples its diluted labels keep are cleaner than the data.",
              Quantity(metric="label_precision", label="kept samples' precision"), ">",
              clean_rate("noisy labels' accuracy"), window=ALL_EPOCHS),
    )

    @dataclass
    class Hparams:
        # Paper Sect. 5 and Fig. 8 (best of 2..10); the official argparse default is 3, but the
        # result files its plotting script reads are named ..._K8_256_beta0.9..., so 8 made the figures.
        k: int = 8
        gamma: float = 3.0  # official prop_label: clamp(E E^T / B, 0) ** 3
        alpha: float = 0.99  # paper's alpha; official hard-codes (I - 0.99 W)^-1
        beta: float = 0.9  # paper Fig. 8 (best of 0.5..1.0); official --beta 0.9
        selection: str = "soft"  # official: w_i = Z_i[y~_i]; "hard": paper Eq. 6 indicator
        solver: str = "closed"  # official: linear solve; "iterate": paper Eq. 3 for `iterations` steps
        # The paper gives no T ("until convergence"): the gap to the closed form shrinks as
        # 2 alpha^T / (1 - alpha), below 1e-2 at T = 1000; a fixed count needs no host-side test.
        iterations: int = 1000
        temporal: str = "input"  # official: mix into the dilution's input; "output": paper Eq. 5
        warmup_epochs: int = 10  # official: `if epoch < 10` dilutes plain one-hot labels (input mode)
        # official prop_label: a zero row of W makes all of Z NaN, so `Z = cur` for the whole
        # batch; "row": only that row keeps its input (see dilute)
        fallback: str = "batch"

        def validate(self) -> None:
            choices = {"selection": ("soft", "hard"), "solver": ("closed", "iterate"), "temporal": ("input", "output"),
                       "fallback": ("batch", "row")}
            for name, allowed in choices.items():
                if getattr(self, name) not in allowed:
                    raise BenchError(f"--hp lend.{name}={getattr(self, name)}: choose one of {', '.join(allowed)}")
            if self.k < 1 or self.iterations < 1 or self.warmup_epochs < 0:
                raise BenchError("--hp lend.k and lend.iterations must be >= 1, lend.warmup_epochs >= 0")
            if not (0.0 <= self.alpha < 1.0):
                raise BenchError(f"--hp lend.alpha={self.alpha}: must lie in [0, 1) for (I - alpha W) to be invertible")
            if not (0.0 <= self.beta <= 1.0) or self.gamma <= 0:
                raise BenchError("--hp lend.beta must lie in [0, 1] and lend.gamma be > 0")

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)
        # Each sample's diluted label from its last visit (input mode: the last dilution's output;
        # output mode: the running average Z^tau).  Buffers, so the checkpoint carries them.
        self.register_buffer("diluted_labels", torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device))
        self.register_buffer("visited", torch.zeros(ctx.num_train, dtype=torch.bool, device=ctx.device))

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        hp = self.hparams
        logits, features = self.net(batch.images, return_features=True)
        onehot = F.one_hot(batch.labels, self.ctx.num_classes).float()
        previous = self.diluted_labels[batch.index]
        visited = self.visited[batch.index]
        given = onehot
        if hp.temporal == "input" and epoch >= hp.warmup_epochs:
            given = temporal_input(onehot, previous, visited, hp.beta)
        dilution = dilute(features, given, k=hp.k, gamma=hp.gamma, alpha=hp.alpha,
                          solver=hp.solver, iterations=hp.iterations, fallback=hp.fallback)
        diluted = dilution.labels
        if hp.temporal == "output":
            diluted = temporal_output(diluted, previous, visited, hp.beta)
        self.diluted_labels[batch.index] = diluted
        self.visited[batch.index] = True
        weights = sample_weights(diluted, batch.labels, hp.selection)
        # Official: mean over the batch of w_i * CE_i (not renormalised by the weights' sum).
        loss = (weights * F.cross_entropy(logits, batch.labels, reduction="none")).mean()
        return StepOutput(
            loss=loss,
            selected={"": weights},
            relabelled={"diluted_label": diluted.argmax(dim=1), "model_pred": logits.detach().argmax(dim=1)},
            # Averaged over the epoch's steps: nan_fallbacks is the share of batches in which any
            # row fell back, fallback_rows the mean share of a batch's rows that did.
            stats={"nan_fallbacks": dilution.fell_back, "fallback_rows": dilution.fallback_rows},
        )

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)
