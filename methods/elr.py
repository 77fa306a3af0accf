"""ELR: cross-entropy plus a regulariser that keeps each prediction near its running target.

Paper: Liu, Niles-Weed, Razavian, Fernandez-Granda, "Early-Learning Regularization Prevents
Memorization of Noisy Labels", NeurIPS 2020 (arXiv 2007.00151).  Official code:
github.com/shengliu66/ELR, folder ELR/ (model/loss.py ``elr_loss``, config_*.json); ELR+ (two
networks, mixup, weight averaging) is ELR_plus/ and not this file.

Rule (per step, for the batch's samples i, with z_i the logits of the augmented view):

    p_i  = clamp(softmax(z_i), eps, 1 - eps)                               eps = 1e-4 (loss.py)
    t_i <- beta * t_i + (1 - beta) * p_i.detach() / ||p_i||_1              t_i = 0 at the start
    L    = mean_i CE(z_i, y~_i) + lambda * mean_i log(1 - <p_i, t_i>)

The targets are a temporal ensemble of the network's own early-learning predictions (paper
Sect. 4, "target estimation"), kept per training sample and indexed by the sample's position;
the regulariser (paper Sect. 4, "early-learning regularization") has gradient
-lambda * t_i / (1 - <p_i, t_i>) in p, so descent moves p_i toward t_i and, where the target has
kept the clean class, counteracts the CE gradient toward a wrong noisy label (Sect. 4.1).
The regulariser's <p_i, t_i> uses the target just updated with this step's own prediction, as
loss.py does.  Mislabelled samples are those with argmax t_i != y~_i (the README), which this
method reports as ``target_acc`` (the targets' accuracy against the clean labels).

Defaults (from the official configs, ``train_loss.args``):

    CIFAR-10, symmetric noise   beta 0.7, lambda 3   ELR/config_cifar10.json
    CIFAR-10, asymmetric noise  beta 0.9, lambda 1   ELR/config_cifar10_asym.json
    CIFAR-100 (both kinds)      beta 0.9, lambda 7   ELR/config_cifar100.json (its README runs it with --asym 1 too)

Ours: ``beta``/``lam`` None picks that row by the number of classes (100 or more: CIFAR-100's)
and the noise kind: the class-dependent kinds take the asymmetric row -- ``asym`` (the flip maps,
CIFAR-10's being the one ELR's code uses) and ``pair``, which is none of ELR's settings but flips
each class to one other class as asym does (DivideMix's defaults read it the same way) -- and
every other kind the symmetric row.  The rule is fixed, not tuned: nothing here was chosen on a
test accuracy.  On digits the CIFAR-10 rows are kept as they are.

Where paper and code differ (the defaults follow the code):
- The paper's update averages the softmax p itself; loss.py clamps p to [1e-4, 1 - 1e-4] first
  and renormalises the clamped vector to sum 1 for the target, while the regulariser uses the
  clamped p without renormalising (and the clamp zeroes the gradient of clamped entries).
  ``--hp elr.clamp=0`` is the paper's equations literally; without the clamp <p, t> can round
  to 1 in float32 once a prediction and its target are both one-hot, and log(0) = -inf.
- The targets start at 0 and are not bias-corrected (temporal ensembling's 1 - beta^k), so a
  target's mass is 1 - beta^k after its k-th visit; the code does the same.

``original`` recipes (the optimiser and schedule each config sets; the official network is the
CIFAR ResNet-34 of ELR/model/ResNet_Zoo.py, which is our ``resnet34``):
- CIFAR-10: SGD 0.02, momentum 0.9, wd 1e-3, batch 128, 120 epochs, lr x0.01 at 40 and 80
  (config_cifar10_asym.json, the paper's step schedule and the README's "ELR" row).  The
  symmetric config (config_cifar10.json) instead trains 150 epochs with CosineAnnealingWarmRestarts
  (T_0 10, eta_min 0.001, stepped per epoch: the README's "ELR (cosine annealing)" row), which our
  Recipe has no schedule for; the step schedule is the closest one the code also uses.
- CIFAR-100: the same optimiser, 150 epochs, lr x0.01 at 80 and 120 (config_cifar100.json).
- Both: crop+flip and the data loaders' fixed Normalize constants, and 10% of the training set
  held out (cifar10.py train_val_split: the network trains on 45,000 images; the code only
  monitors the held-out part), hence val_fraction 0.1.
- Clothing1M: the plain ELR code has none; ELR_plus/config_clothing1m.json's optimiser (SGD 0.002,
  momentum 0.9, wd 1e-3, batch 64, ImageNet ResNet-50, DivideMix's mean/std) with its 15 epochs of
  3000 class-balanced batches (45,000 steps, lr /10 after 7 epochs = 21,000 steps) as the same
  number of steps over our stream's 32,000-image epochs: 90 epochs of 500 steps, lr /10 at 42.
- Any other dataset: the CIFAR-10 optimiser and schedule over the dataset's own protocol.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.core.errors import BenchError
from noisybench.methods.base import Batch, Method, MethodContext, OriginalRecipe, Resolution, StepOutput, TrialFacts
from noisybench.methods.claims import Claim, Quantity, Window, memorisation_selection
from noisybench.methods.registry import register

# ELR/config_cifar10_asym.json (and the paper's CIFAR-10 step schedule): SGD 0.02, momentum 0.9,
# wd 1e-3, batch 128, 120 epochs, MultiStepLR milestones [40, 80] gamma 0.01.
ELR_ORIGINAL = dict(
    optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-3, batch_size=128, epochs=120,
    schedule="multistep", milestones=(40, 80), lr_gamma=0.01,
)
# ELR/data_loader/data_loaders.py's transforms: RandomCrop(32, padding=4), flip, fixed Normalize.
_CIFAR_DATA = dict(model="resnet34", augment=True, normalize=True, val_fraction=0.1)
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_MEAN_STD = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
# ELR_plus/config_clothing1m.json: 15 epochs x 3000 batches of 64, lr /10 at epoch 7, as steps
# over 32,000-image epochs (500 steps each): 45,000 / 500 = 90 epochs, 7 x 3000 / 500 = 42.
ELR_CLOTHING1M = dict(
    # config_clothing1m.json's arch: torchvision's ImageNet-pretrained ResNet-50 (as dividemix-paper's)
    model="resnet50", optimizer="sgd", lr=0.002, momentum=0.9, weight_decay=1e-3, batch_size=64, epochs=90,
    schedule="multistep", milestones=(42,), lr_gamma=0.1,
)

# (beta, lambda) of each official config's train_loss.args.
SYMMETRIC_10 = (0.7, 3.0)  # ELR/config_cifar10.json
ASYMMETRIC_10 = (0.9, 1.0)  # ELR/config_cifar10_asym.json
CIFAR100 = (0.9, 7.0)  # ELR/config_cifar100.json


# Noise kinds that flip each class towards particular others: ELR's asymmetric config.
CLASS_DEPENDENT_KINDS = ("asym", "pair")


def official_config_name(num_classes: int, noise_kind: str, folder: str = "ELR") -> str:
    """The official config file :func:`official_beta_lambda` reads its row from (``folder``: ELR or
    ELR_plus, whose configs carry the same rows)."""
    if num_classes >= 100:
        return f"{folder}/config_cifar100.json"
    return f"{folder}/config_cifar10_asym.json" if noise_kind in CLASS_DEPENDENT_KINDS else f"{folder}/config_cifar10.json"


def fill_beta_lambda(hparams, noise_kind: str, num_classes: int | None,
                     folder: str = "ELR") -> Resolution:
    """ELR's and ELR+'s ``resolve``: ``beta`` and ``lam`` left None take the official config's row
    for the number of classes (10 when unknown) and the noise, with the config's name as source."""
    beta, lam = official_beta_lambda(num_classes or 10, noise_kind)
    source = official_config_name(num_classes or 10, noise_kind, folder)
    filled = {k: v for k, v in (("beta", beta), ("lam", lam)) if getattr(hparams, k) is None}
    return Resolution(dataclasses.replace(hparams, **filled), {k: source for k in filled})


def official_beta_lambda(num_classes: int, noise_kind: str) -> tuple[float, float]:
    """(beta, lambda) of the official config that fits: CIFAR-100's from 100 classes up, else
    CIFAR-10's asymmetric config for class-dependent noise (asym, pair), else its symmetric one."""
    if num_classes >= 100:
        return CIFAR100
    return ASYMMETRIC_10 if noise_kind in CLASS_DEPENDENT_KINDS else SYMMETRIC_10


def clamped_probabilities(logits: Tensor, eps: float) -> Tensor:
    """softmax(z) clamped to [eps, 1 - eps] (ELR/model/loss.py; eps = 0: the plain softmax).

    Computed in float32 whatever the logits' precision: the log(1 - <p, t>) that follows is
    where half precision would round to log(0)."""
    probs = F.softmax(logits.float(), dim=1)
    return probs.clamp(eps, 1.0 - eps) if eps > 0 else probs


def update_targets(targets: Tensor, probs: Tensor, beta: float) -> Tensor:
    """t <- beta * t + (1 - beta) * p / ||p||_1, row by row (Liu et al. 2020, Sect. 4, the
    temporal-ensembling target; loss.py normalises the clamped p, which no longer sums to 1).

    ``probs`` are detached here: the target is a constant of the step's loss."""
    probs = probs.detach()
    return beta * targets + (1.0 - beta) * probs / probs.sum(dim=1, keepdim=True)


def elr_regulariser(probs: Tensor, targets: Tensor) -> Tensor:
    """log(1 - <p_i, t_i>) per sample (Liu et al. 2020, Sect. 4, the ELR term; the loss adds its
    batch mean times lambda).  It falls as p_i aligns with t_i: its gradient in p_i is
    -t_i / (1 - <p_i, t_i>), so gradient descent moves the prediction toward the target."""
    return torch.log(1.0 - (probs * targets).sum(dim=1))


def elr_loss(logits: Tensor, labels: Tensor, probs: Tensor, targets: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """(loss, regulariser mean): mean CE(z, y~) + lam * mean log(1 - <p, t>) (Liu et al. 2020,
    the ELR loss; the CE is on the unclamped logits, as loss.py's F.cross_entropy)."""
    regulariser = elr_regulariser(probs, targets).mean()
    return F.cross_entropy(logits, labels) + lam * regulariser, regulariser


@register("elr")
class ELR(Method):
    """ELR (Liu et al., NeurIPS 2020): CE + lambda*log(1 - <p, t>) toward per-sample temporal-ensemble targets. Code: shengliu66/ELR."""
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: CE + lambda*log(1 - <p, t>) toward temporal-ensemble targets (shengliu66/ELR)",
    }

    original = OriginalRecipe(
        ELR_ORIGINAL, "Liu et al. 2020, shengliu66/ELR ELR/config_cifar10_asym.json (its CIFAR-10 optimiser and "
                      "step schedule; the code has no config for this dataset)",
        per_dataset={
            "cifar10": ({**ELR_ORIGINAL, **_CIFAR_DATA, "mean_std": CIFAR10_MEAN_STD},
                        "Liu et al. 2020, shengliu66/ELR ELR/config_cifar10_asym.json, data_loaders.py, "
                        "ResNet_Zoo.py ResNet-34 (CIFAR-10; config_cifar10.json's cosine restarts not available)"),
            "cifar100": ({**ELR_ORIGINAL, **_CIFAR_DATA, "mean_std": CIFAR100_MEAN_STD, "epochs": 150,
                          "milestones": (80, 120)},
                         "Liu et al. 2020, shengliu66/ELR ELR/config_cifar100.json, data_loaders.py, "
                         "ResNet_Zoo.py ResNet-34 (CIFAR-100)"),
            "clothing1m": (ELR_CLOTHING1M,
                           "Liu et al. 2020, shengliu66/ELR ELR_plus/config_clothing1m.json (plain ELR has no "
                           "Clothing1M config; its 45,000 steps over 32,000-image epochs)"),
        },
    )

    claims = (
        Claim("memorisation", "Liu et al., NeurIPS 2020, Fig. 1",
              "It does not memorise the wrong labels that cross-entropy (standard) memorises: fewer mislabelled "
              "samples are predicted as their wrong label.",
              Quantity(metric="fit_weight_noisy", label="elr fits wrong labels"), "<",
              Quantity(metric="fit_weight_noisy", method="standard", label="standard fits wrong labels"),
              window=Window("fraction", 0.75, 1.0, "the last quarter of training")),
    )

    @dataclass
    class Hparams:
        # Target momentum; None: the official config's -- 0.7 (config_cifar10.json; below 100 classes,
        # every noise kind but asym and pair), 0.9 (config_cifar10_asym.json under asym and pair;
        # config_cifar100.json).
        beta: float | None = None
        # Regulariser weight lambda; None: the official config's -- 3 (config_cifar10.json), 1
        # (config_cifar10_asym.json, asym and pair noise), 7 (config_cifar100.json, 100 classes or more).
        lam: float | None = None
        clamp: float = 1e-4  # loss.py torch.clamp(y_pred, 1e-4, 1.0 - 1e-4); 0: the paper's plain softmax

        def validate(self) -> None:
            if self.beta is not None and not 0.0 <= self.beta < 1.0:
                raise BenchError(f"--hp elr.beta={self.beta}: must lie in [0, 1) (the targets' momentum)")
            if self.lam is not None and self.lam < 0.0:
                raise BenchError(f"--hp elr.lam={self.lam}: must be >= 0 (0 is plain cross-entropy)")
            if not 0.0 <= self.clamp < 0.5:
                raise BenchError(f"--hp elr.clamp={self.clamp}: must lie in [0, 0.5) (a probability floor)")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        return fill_beta_lambda(hparams, facts.noise_kind, facts.num_classes)

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)
        self.beta, self.lam = self.hparams.beta, self.hparams.lam
        # t_i for every training sample, indexed by batch.index (zeros, as loss.py); a buffer, so
        # that a resumed trial goes on from the targets it had.
        self.register_buffer("targets", torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device))

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.net(batch.images)
        probs = clamped_probabilities(logits, self.hparams.clamp)
        targets = update_targets(self.targets[batch.index], probs, self.beta)
        self.targets[batch.index] = targets
        loss, regulariser = elr_loss(logits, batch.labels, probs, targets, self.lam)
        return StepOutput(
            loss=loss,
            relabelled={"target": targets.argmax(dim=1)},
            # As standard logs it: fit_weight_noisy, the share of mislabelled samples predicted as their
            # wrong label (memorisation; the paper's Fig. 1), for the claim against standard.
            selected=memorisation_selection(logits, batch.labels),
            stats={"elr_reg": regulariser.detach(),
                   "target_agrees_label": (targets.argmax(dim=1) == batch.labels).float().mean()},
        )

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)
