"""Standard training: mean cross-entropy on the noisy labels (the baseline)."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from noisybench.methods.base import Batch, Method, MethodContext, StepOutput
from noisybench.methods.claims import memorisation_selection
from noisybench.methods.registry import register


@register("standard")
class Standard(Method):
    """Cross-entropy on the noisy labels; shows the memorisation effect that others are judged by."""
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: mean cross-entropy on the noisy labels",
    }

    @dataclass
    class Hparams:
        pass

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.net(batch.images)
        loss = F.cross_entropy(logits, batch.labels)
        # Memorisation, scored by the trainer as a selection (no host sync, no number changes): the
        # samples whose prediction equals their given label; fit_weight_noisy is the share of
        # mislabelled samples predicted as their wrong label (ELR's Fig. 1, which elr's claim reads).
        return StepOutput(loss=loss, selected=memorisation_selection(logits, batch.labels))

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)
