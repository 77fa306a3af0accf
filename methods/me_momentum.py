"""Me-Momentum (Bai & Liu, "Me-Momentum: Extracting Hard Confident Examples from Noisily
Labeled Data", ICCV 2021).  Official code: tmllab/2021_ICCV_Me-Momentum (main.py, common/tools.py).

Confident examples and the classifier improve each other in rounds.  An outer loop trains a
fresh model at constant lr, early-stopped on a class-balanced NOISY validation split; inner
rounds reload the best-validation model, take as confident set every training sample whose
prediction equals its noisy label, and train on that set with the lr dropped at 40% and 80%
of the round.  The trainer runs the epochs; this class only moves between rounds: its epoch plan
begins them, its epoch end decides them.

Its validation is scored as main.py scores it, by default: through ``transform_train`` (random
crop + flip where the recipe augments, drawn from the trainer's seeded generator), and rounded to
2 decimals of a percent before every comparison that keeps, stops or reports a model
(common/tools.py evaluate_val).  ``val_augment=False`` and ``val_round_decimals=None`` give the
project's other reading: the unaugmented, unrounded ``val_balanced_acc`` of the metrics line.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

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

# main.py: MultiStepLR(milestones=[40, 80], gamma=0.1) in an n_epoch=100 round, i.e. at 40% and 80%.
INNER_LR_MILESTONES = (0.4, 0.8)
INNER_LR_GAMMA = 0.1


def n_add_rule(val: float, kept: float, n_add: float, step: float = 0.1, limit: float = 2.0) -> tuple[bool, float, bool]:
    """Me-Momentum's outer-loop early stopping (Bai & Liu, ICCV 2021; main.py): keep the model
    when ``val > kept + n_add``; otherwise ``n_add += step``, and stop once ``n_add > limit``.

    ``val`` and ``kept`` are in percent, as the official evaluate_val returns them.  ``n_add`` is
    accumulated by repeated addition exactly as main.py does, so with the defaults the 20th epoch
    without improvement stops (0.1 added 20 times is 2.0000000000000004 > 2: "No improved in 20
    epoch").  Returns (keep the model, new n_add, stop).
    """
    if val > kept + n_add:
        return True, 0.0, False
    n_add = n_add + step
    return False, n_add, n_add > limit


def validation_percent(balanced_fraction: float, decimals: int | None) -> float:
    """The balanced noisy-validation accuracy in percent as Me-Momentum's rules compare it:
    common/tools.py evaluate_val returns ``round(np.average(100 * correct / total), 2)``, and every
    keep / stop / report decision of main.py compares those rounded numbers.  Rounded as numpy
    rounds a float64 (half to even on x * 10**decimals); ``decimals=None``: unrounded."""
    percent = 100.0 * balanced_fraction
    return percent if decimals is None else float(np.round(percent, decimals))


def confident_set(logits: Tensor, noisy_labels: Tensor, candidates: Tensor) -> Tensor:
    """Me-Momentum's confident examples (ICCV 2021, Sect. 3; common/tools.py isSame): the
    candidates whose predicted class equals their noisy label -- no probability threshold."""
    return (logits.argmax(dim=1) == noisy_labels) & candidates


def inner_lr_factor(epoch_in_round: int, round_epochs: int) -> float:
    """The inner round's MultiStepLR as a factor of the base lr (0-based epoch within the round)."""
    drops = sum(1 for m in INNER_LR_MILESTONES if epoch_in_round >= round(m * round_epochs))
    return INNER_LR_GAMMA**drops


@dataclass
class Progress:
    """Where the loops stand; plain numbers, saved in the checkpoint as the module's extra state."""

    outer_loop: int = 0  # 1..max_outer_loop once started
    inner_loop: int = 0  # 0 in the outer phase, then 1..max_inner_loop-1
    phase: str = "outer"
    round: int = 0  # every restart of model and optimiser counts one round
    round_start: int = 0  # the trainer epoch (0-based) at which the current round began
    n_add: float = 0.0
    kept_val: float = 0.0  # main.py inner_val_acc: best validation of this outer loop (percent)
    last_round_val: float = 0.0  # main.py last_round_acc
    best_val: float = 0.0  # main.py best_val_acc: across all loops; its model is the reported one
    next_action: str | None = "outer"  # what the next epoch's plan begins: "outer", "inner" or nothing
    stop_reason: str | None = None


# Me-Momentum's own recipe (tmllab/2021_ICCV_Me-Momentum main.py, CIFAR): SGD 0.01, momentum 0.9,
# wd 1e-4, batch 128, crop+flip.  The lr is constant in the outer phase and restarts with
# MultiStepLR at 40%/80% of every inner round -- the method sets that itself (EpochPlan.lr_factor),
# so the recipe's schedule is "constant".
ME_MOMENTUM_ORIGINAL = dict(
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=128, schedule="constant",
    milestones=(), augment=True,
)


@register("me_momentum")
class MeMomentum(Method):
    """Me-Momentum (Bai & Liu, ICCV 2021): rounds of confident-set extraction and retraining.

    Its keep / stop / report rules compare the balanced noisy-validation accuracy as main.py does
    by default: measured on training-augmented images (``val_augment``) and rounded to 2 decimals
    of a percent (``val_round_decimals``); the metrics line's ``scored_val_balanced_acc`` is that value.
    """
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: rounds of confident-set extraction and retraining (Me-Momentum main.py)",
    }

    # main.py: LeNet on MNIST, no augmentation; its ResNets (stem padding 0) on CIFAR.  Each with
    # main.py's fixed Normalize constants -- on CIFAR-10 the widespread (0.2023, 0.1994, 0.2010),
    # not the training images' own std (about 0.247, 0.243, 0.261).
    needs_in_memory_data = "it trains on its confident set every epoch and holds out a validation split"
    has_stopping_rule = True  # its loops end when an inner round stops improving the noisy validation
    original = OriginalRecipe(
        ME_MOMENTUM_ORIGINAL, "Bai & Liu 2021, tmllab/2021_ICCV_Me-Momentum main.py (CIFAR)",
        per_dataset={
            # 200 epochs, so that rounds (half the protocol's epochs) are main.py's n_epoch=100 here too.
            "mnist": ({**ME_MOMENTUM_ORIGINAL, "model": "lenet", "augment": False, "normalize": True,
                       "mean_std": ((0.1307,), (0.3081,)), "epochs": 200},
                      "Bai & Liu 2021, tmllab/2021_ICCV_Me-Momentum main.py, networks/Lenet.py (MNIST)"),
            "cifar10": ({**ME_MOMENTUM_ORIGINAL, "model": "memomentum_resnet18", "normalize": True,
                         "mean_std": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))},
                        "Bai & Liu 2021, tmllab/2021_ICCV_Me-Momentum main.py, networks/Resnet.py "
                        "ResNet18 (CIFAR-10)"),
            "cifar100": ({**ME_MOMENTUM_ORIGINAL, "model": "memomentum_resnet34", "normalize": True,
                          "mean_std": ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))},
                         "Bai & Liu 2021, tmllab/2021_ICCV_Me-Momentum main.py, networks/Resnet.py "
                         "ResNet34 (CIFAR-100)"),
        },
    )

    claims = (
        Claim("extraction", "Bai & Liu, ICCV 2021, Sect. 3 (the inner rounds)",
              "Its rounds extract more confident examples: the last inner round's confident set is larger "
              "than the first's.",
              Quantity(metric="confident_kept_fraction", window=Window("round", -1, 1, "the last inner round"),
                       label="confident set, last round"), ">",
              Quantity(metric="confident_kept_fraction", window=Window("round", 0, 1, "the first inner round"),
                       label="confident set, first round"),
              window=Window("fraction", 0.0, 1.0, "the inner rounds"), phase="inner"),
        Claim("precision", "Bai & Liu, ICCV 2021, Sect. 3 (the inner rounds)",
              "Extracting more does not cost precision: the last round's confident set is still cleaner "
              "than the data.",
              Quantity(metric="confident_label_precision", window=Window("round", -1, 1, "the last inner round"),
                       label="confident precision, last round"), ">", clean_rate("noisy labels"),
              window=Window("fraction", 0.0, 1.0, "the inner rounds"), phase="inner"),
    )

    @dataclass
    class Hparams:
        val_fraction: float = 0.1  # main.py data_percent=0.9: 10% held out as noisy validation
        max_outer_loop: int = 3  # main.py
        max_inner_loop: int = 20  # main.py: up to max_inner_loop - 1 = 19 confident-set rounds
        # main.py n_epoch=100, with the 200-epoch CIFAR protocols in mind; None: half the protocol's
        # epochs (100 under lend-paper, as main.py; 50 under quick's 100 on digits).
        round_epochs: int | None = None
        n_add_step: float = 0.1  # main.py, in percentage points of balanced validation accuracy
        n_add_limit: float = 2.0  # main.py: stop the outer phase once n_add > 2
        # Ours (main.py has no limit): the trial runs at most this x the protocol's epochs.
        budget_factor: float = 5.0
        val_augment: bool = True  # main.py: val_loader takes transform_train (crop+flip if augmenting); False: unaugmented
        val_round_decimals: int | None = 2  # common/tools.py evaluate_val: round(acc, 2) in percent; None: unrounded

        def validate(self) -> None:
            from noisybench.core.errors import BenchError

            if not 0.0 < self.val_fraction < 1.0:
                raise BenchError(f"me_momentum.val_fraction={self.val_fraction}: needs a validation split in (0, 1)")
            if self.max_outer_loop < 1 or self.max_inner_loop < 2:
                raise BenchError("me_momentum: max_outer_loop >= 1 and max_inner_loop >= 2 (one inner round)")
            if (self.round_epochs is not None and self.round_epochs < 1) or self.budget_factor <= 0:
                raise BenchError("me_momentum: round_epochs >= 1 and budget_factor > 0")
            if self.val_round_decimals is not None and self.val_round_decimals < 0:
                raise BenchError(f"--hp me_momentum.val_round_decimals={self.val_round_decimals}: must be >= 0, "
                                 "or none for unrounded")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        """Rounds of half the protocol's epochs (main.py's n_epoch=100 of 200), the validation split
        main.py holds out, and the epoch budget its rounds may use."""
        sources = {}
        if hparams.round_epochs is None:
            hparams = replace(hparams, round_epochs=max(1, facts.epochs // 2))
            sources["round_epochs"] = f"half the protocol's {facts.epochs} epochs (main.py n_epoch=100 of 200)"
        return Resolution(hparams, sources, validation_fraction=hparams.val_fraction,
                          epoch_budget=max(1, round(facts.epochs * hparams.budget_factor)))

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)
        # main.py's "_latest" file: the best-validation model of the current outer loop, kept in
        # memory (and in the checkpoint), frozen so that no optimiser ever steps it.
        self.kept_net = ctx.build_network(0).requires_grad_(False)
        self.register_buffer("train_mask", torch.ones(ctx.num_train, dtype=torch.bool, device=ctx.device))
        self.round_epochs = self.hparams.round_epochs
        self.progress = Progress()

    def get_extra_state(self) -> dict:
        return asdict(self.progress)

    def set_extra_state(self, state: dict) -> None:
        self.progress = Progress(**state)


    def networks(self):
        return [self.net]

    # --- rounds ------------------------------------------------------------------
    def _begin_round(self, epoch: int, phase: str, weights: dict, trainer: TrainerView) -> None:
        p = self.progress
        p.phase, p.round, p.round_start, p.next_action = phase, p.round + 1, epoch, None
        self.net.load_state_dict(weights)
        trainer.reset_optimizer()  # main.py builds a new SGD every round

    def epoch_plan(self, epoch: int, trainer: TrainerView) -> EpochPlan:
        """Begin the round the last epoch's end decided on, if any; then train on the current set, at
        the outer loop's constant lr or the inner round's own schedule, until the loops have ended."""
        p = self.progress
        if p.stop_reason is not None:
            return EpochPlan(finished=p.stop_reason)
        if p.next_action == "outer":
            # A fresh model per outer loop, trained on the current set: everything in the first
            # loop, the last confident set after (main.py reassigns train_loader in the inner loop).
            p.outer_loop, p.inner_loop = p.outer_loop + 1, 0
            p.n_add, p.kept_val, p.last_round_val = 0.0, 0.0, 0.0
            fresh = self.ctx.build_network(p.outer_loop - 1).state_dict()
            self._begin_round(epoch, "outer", fresh, trainer)
        elif p.next_action == "inner":
            p.inner_loop += 1
            self._begin_round(epoch, "inner", self.kept_net.state_dict(), trainer)
            # Predicted on training-augmented inputs, as main.py's predict_dataset uses transform_train.
            candidates = torch.zeros_like(self.train_mask)
            candidates[trainer.train_index] = True
            self.train_mask.copy_(confident_set(trainer.predict_train(augment=True), trainer.noisy_labels, candidates))
        # main.py: the outer loop's SGD has no scheduler; each inner round has its MultiStepLR.
        lr_factor = 1.0 if p.phase == "outer" else inner_lr_factor(epoch - p.round_start, self.round_epochs)
        return EpochPlan(passes=(TrainPass(subset=self.train_mask),), lr_factor=lr_factor, round=p.round, phase=p.phase)

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        return StepOutput(loss=F.cross_entropy(self.net(batch.images), batch.labels))

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)

    def on_epoch_end(self, epoch: int, trainer: TrainerView) -> dict[str, float]:
        p, hp = self.progress, self.hparams
        # Percent, as evaluate_val returns it; augmented and rounded as main.py unless told otherwise.
        scored = trainer.validation_accuracy(augment=hp.val_augment)["val_balanced_acc"]
        val = validation_percent(scored, hp.val_round_decimals)
        round_over = epoch - p.round_start + 1 >= self.round_epochs
        adopted = False
        if p.phase == "outer":
            keep, p.n_add, stop = n_add_rule(val, p.kept_val, p.n_add, hp.n_add_step, hp.n_add_limit)
            if keep:
                p.kept_val = val
                self.kept_net.load_state_dict(self.net.state_dict())
            if stop or round_over:
                p.next_action = "inner"
        else:
            if val > p.kept_val:  # the inner rounds keep any improvement, without n_add
                p.kept_val = val
                self.kept_net.load_state_dict(self.net.state_dict())
                if val > p.best_val:  # main.py reports the test accuracy of this model
                    p.best_val, adopted = val, True
            if round_over:
                self._end_inner_round()
        trainer.report_selection("confident_", self.train_mask)
        return {"outer_loop": p.outer_loop, "inner_loop": p.inner_loop, "n_add": p.n_add,
                "kept_val_balanced_acc": p.kept_val / 100.0,
                # The validation this epoch's decisions compared (augmented and rounded as set).
                "scored_val_balanced_acc": val / 100.0,
                "confident_size": float(self.train_mask[trainer.train_index].sum()),
                "own_selected": float(adopted)}

    def _end_inner_round(self) -> None:
        p, hp = self.progress, self.hparams
        improved = p.kept_val > p.last_round_val
        if improved:
            p.last_round_val = p.kept_val
        if improved and p.inner_loop < hp.max_inner_loop - 1:
            p.next_action = "inner"
            return
        why = (f"inner round {p.inner_loop} did not improve the noisy validation" if not improved
               else f"{p.inner_loop} inner rounds done")
        if p.outer_loop < hp.max_outer_loop:
            p.next_action = "outer"
        else:
            reported = (f"its reported model has {p.best_val:.2f}% balanced noisy-validation accuracy" if p.best_val > 0
                        else "no inner-round model beat its outer loop's validation, so none was reported")
            p.stop_reason = (f"Me-Momentum's loops ended: outer loop {p.outer_loop} of {hp.max_outer_loop} "
                             f"closed ({why}); {reported}")
