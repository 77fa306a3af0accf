"""Bootstrapping (Reed et al. 2015): cross-entropy towards a mix of the given label and the network's own belief.

Importing this module registers the method ``bootstrap`` with noisybench (the entry point in
``pyproject.toml`` names it), like any built-in method file.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from noisybench.core.errors import BenchError
from noisybench.methods.base import Batch, Method, MethodContext, StepOutput
from noisybench.methods.registry import register

VARIANTS = ("soft", "hard")
# beta, the weight of the given label, per variant: 0.95 for soft and 0.8 for hard bootstrapping,
# the values Reed et al. 2015 report for their MNIST experiments as they are commonly cited (and
# used by reimplementations); the paper's own text was not at hand when this default was set.
PAPER_BETA = {"soft": 0.95, "hard": 0.8}


def bootstrapping_loss(logits: Tensor, labels: Tensor, beta: float, hard: bool,
                       detach_target: bool = False) -> Tensor:
    """Per-sample bootstrapping loss (Reed, Lee, Anguelov, Szegedy, Erhan, Rabinovich, "Training
    Deep Neural Networks on Noisy Labels with Bootstrapping", ICLR 2015 workshop, arXiv:1412.6596):

        soft:  L = -sum_k (beta * t_k + (1 - beta) * q_k) log q_k
        hard:  L = -sum_k (beta * t_k + (1 - beta) * z_k) log q_k,   z = onehot(argmax_k q_k)

    with t the one-hot given (noisy) label and q = softmax(logits).  Written without one-hot
    tensors: soft = beta * CE(q, y) + (1 - beta) * H(q), the entropy H making it the paper's
    reading of soft bootstrapping as minimum-entropy regularisation; hard = beta * CE(q, y) + (1 - beta) * CE(q, argmax q).
    No gradient flows through the argmax.  ``detach_target``: treat the soft target's q as a fixed
    pseudo-label (no gradient through it), as some reimplementations do.  Computed in fp32.
    """
    log_q = F.log_softmax(logits.float(), dim=1)
    given = -log_q.gather(1, labels[:, None]).squeeze(1)
    if hard:
        own = -log_q.gather(1, log_q.argmax(dim=1, keepdim=True)).squeeze(1)
    else:
        q = log_q.exp()
        own = -((q.detach() if detach_target else q) * log_q).sum(dim=1)
    return beta * given + (1.0 - beta) * own


@register("bootstrap")
class Bootstrap(Method):
    """Bootstrapping (Reed et al., ICLR-W 2015): CE towards beta*label + (1-beta)*own prediction; variant soft or hard."""

    @dataclass
    class Hparams:
        variant: str = "soft"  # Reed et al. 2015 propose both: "soft" (probabilities) or "hard" (argmax)
        # Weight of the given label; None: the paper's value for the variant (0.95 soft, 0.8 hard)
        beta: float | None = None
        detach_target: bool = False  # False: gradient through q, the paper's min-entropy reading

        def validate(self) -> None:
            if self.variant not in VARIANTS:
                raise BenchError(f"--hp bootstrap.variant={self.variant}: choose one of {', '.join(VARIANTS)}")
            if self.beta is not None and not 0.0 <= self.beta <= 1.0:
                raise BenchError(f"--hp bootstrap.beta={self.beta}: must lie in [0, 1] (1 is plain cross-entropy)")

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)
        self.beta = hparams.beta if hparams.beta is not None else PAPER_BETA[hparams.variant]

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        logits = self.net(batch.images)
        loss = bootstrapping_loss(logits, batch.labels, self.beta, hard=self.hparams.variant == "hard",
                                  detach_target=self.hparams.detach_target).mean()
        predicted = logits.detach().argmax(dim=1)
        # Diagnostics, scored by the trainer against the clean labels this method never sees:
        # predicted_acc, how often the belief mixed into the target is right; agree_label_precision,
        # how clean the samples are whose own prediction confirms their given label.
        return StepOutput(loss=loss, relabelled={"predicted": predicted},
                          selected={"agree_": (predicted == batch.labels).float()})

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)
