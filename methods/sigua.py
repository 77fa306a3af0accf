"""SIGUA_SL: descent on the small-loss samples, scaled ascent on the best of the discarded ones."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.core.errors import BenchError
from noisybench.methods.base import Batch, Method, MethodContext, OriginalRecipe, Resolution, StepOutput, TrialFacts
from noisybench.methods.coteaching import COTEACHING_ORIGINAL
from noisybench.methods.claims import Claim, Quantity, Window
from noisybench.methods.registry import register
from noisybench.methods.selection import (
    check_schedule_hparams,
    forget_rate_at,
    forget_rate_schedule,
    masked_mean,
    num_remembered,
    fill_forget_rate,
    small_loss_order,
)

# The per-setting sigua_rate of bhanML/SIGUA scripts/cifar10_sigua_sl.sh: 0.4 for sym-20, 0.3
# for sym-50 and pair-45.  Other rates take the value of the nearer of those settings: 0.4 below
# a forget rate of 0.35 (midway between 0.2 and 0.5), 0.3 from there on.
SIGUA_RATE_LOW_NOISE, SIGUA_RATE_HIGH_NOISE, SIGUA_RATE_SWITCH = 0.4, 0.3, 0.35
SIGUA_SCALE = 0.01  # γ of scripts/cifar10_sigua_sl.sh in all three settings
# (γ, sigua_rate) where a script departs from those: scripts/mnist_sigua_sl.sh runs pair-45 with
# --sigua_scale 0.001 --sigua_rate 0.7 (its sym-20 and sym-50 runs are the CIFAR-10 values).
SCRIPT_EXCEPTIONS: dict[str, dict[str, tuple[float, float]]] = {"cifar10": {}, "mnist": {"pair": (0.001, 0.7)}}


def default_sigua_rate(forget_rate: float) -> float:
    return SIGUA_RATE_LOW_NOISE if forget_rate < SIGUA_RATE_SWITCH else SIGUA_RATE_HIGH_NOISE


def script_values(script: str, noise_kind: str, forget_rate: float) -> tuple[float, float]:
    """(γ, sigua_rate) that bhanML/SIGUA's ``scripts/{script}_sigua_sl.sh`` runs this noise with:
    its pair-45 values for pair noise of any rate, else γ = 0.01 and sigua_rate by the forget rate."""
    return SCRIPT_EXCEPTIONS[script].get(noise_kind, (SIGUA_SCALE, default_sigua_rate(forget_rate)))


def sigua_split(losses: Tensor, num_keep: int, sigua_rate: float) -> tuple[Tensor, Tensor, int]:
    """(kept mask, ascent mask, number ascended) for one batch of per-sample losses.

    Sorted ascending: the ``num_keep`` smallest are kept; of the ``B − num_keep`` discarded,
    the first ``int(num_forget · sigua_rate)`` (the lowest-loss discarded, the ones nearest the
    kept set) are ascended.  When that count is 0 the reference still ascends one
    (``loss_big[:1]``); when nothing is discarded there is no ascent (the reference would
    divide 0 by 0).
    """
    order = small_loss_order(losses)
    batch_size = losses.shape[0]
    num_forget = batch_size - num_keep
    num_ascent = max(int(num_forget * sigua_rate), 1) if num_forget > 0 else 0
    kept = torch.zeros_like(losses, dtype=torch.float32).index_fill_(0, order[:num_keep], 1.0)
    ascent = torch.zeros_like(losses, dtype=torch.float32).index_fill_(0, order[num_keep:num_keep + num_ascent], 1.0)
    return kept, ascent, num_ascent


def sigua_sl_loss(losses: Tensor, num_keep: int, sigua_rate: float, sigua_scale: float
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """SIGUA_SL (Han et al., "SIGUA: Forgetting may make learning with noisy labels more
    robust", ICML 2020, Alg. 1 with the self-teaching filter; bhanML/SIGUA loss.py):

        loss = Σ_good ℓ_i / |good| − γ · mean_{sigua} ℓ_i

    i.e. stochastic gradient descent on the probably-clean samples and learning-rate-reduced
    (γ) gradient ascent on the probably-noisy samples closest to them, so the net actively
    forgets the noisy labels instead of only ignoring them.
    Returns (loss, kept mask, ascent mask).
    """
    kept, ascent, num_ascent = sigua_split(losses, num_keep, sigua_rate)
    descent_term = masked_mean(losses, kept, num_keep)
    ascent_term = masked_mean(losses, ascent, num_ascent)
    return descent_term - sigua_scale * ascent_term, kept, ascent


@register("sigua")
class SIGUA(Method):
    """SIGUA_SL (Han et al., ICML 2020): small-loss descent plus gamma-scaled ascent on discarded samples. Code: bhanML/SIGUA.

    γ and sigua_rate default to the official scripts' per-setting values: those of
    scripts/cifar10_sigua_sl.sh everywhere, except under protocol ``original`` on MNIST, whose
    recipe sets ``script=mnist`` (scripts/mnist_sigua_sl.sh: pair-45 with γ 0.001, sigua_rate 0.7).
    Under ``original`` its epochs are at most 401 full batches, as main.py's (COTEACHING_ORIGINAL).
    """
    # What it computes, by version (core/rules.py): bump when a change moves any number.
    rule_version = 1
    rule_history = {
        1: "noisybench 0.2.0: small-loss descent plus gamma-scaled ascent on the discarded samples (bhanML/SIGUA)",
    }

    # Co-teaching's recipe; SIGUA's model.py is Co-teaching's CNN, and its code has MNIST and CIFAR-10 only.
    original = OriginalRecipe(
        COTEACHING_ORIGINAL, "Han et al. 2020, bhanML/SIGUA scripts (Co-teaching's recipe)",
        per_dataset={
            "mnist": ({**COTEACHING_ORIGINAL, "model": "coteaching_cnn", "method_hparams": (("script", "mnist"),)},
                      "Han et al. 2020, bhanML/SIGUA main.py, model.py CNN, scripts/mnist_sigua_sl.sh (MNIST)"),
            "cifar10": ({**COTEACHING_ORIGINAL, "model": "coteaching_cnn"},
                        "Han et al. 2020, bhanML/SIGUA main.py, model.py CNN (CIFAR-10)"),
        },
    )

    claims = (
        Claim("ascent", "Han et al., ICML 2020, Sect. 3 (gradient ascent on the bad data)",
              "What it ascends on (the large-loss samples) is mostly mislabelled.",
              Quantity(metric="ascent_label_precision", label="ascended samples' precision"), "<",
              Quantity(value=0.5, label="half"),
              window=Window("fraction", 0.5, 1.0, "the second half of training (after the forget rate's ramp)"),
              during="ascent_label_precision"),
    )

    @dataclass
    class Hparams:
        forget_rate: float | None = None  # τ; None: the noise rate (utils.py: forget_rate = noise_rate)
        sigua_scale: float | None = None  # γ; None: the script's (0.01; mnist's pair-45: 0.001)
        sigua_rate: float | None = None  # None: the script's (0.4 if τ < 0.35 else 0.3; mnist's pair-45: 0.7)
        # Whose official script fills the two None values above.
        script: str | None = None  # bhanML/SIGUA scripts/<cifar10|mnist>_sigua_sl.sh; None: mnist under original on MNIST, else cifar10
        num_gradual: int = 10  # T_k (arguments.py --num_gradual 10)
        exponent: float = 1.0  # c (arguments.py --exponent 1)

        def validate(self) -> None:
            check_schedule_hparams("sigua", self)
            if self.script is not None and self.script not in SCRIPT_EXCEPTIONS:
                raise BenchError(f"--hp sigua.script={self.script}: choose one of {', '.join(SCRIPT_EXCEPTIONS)} "
                                 "(bhanML/SIGUA scripts/<script>_sigua_sl.sh)")
            if self.sigua_scale is not None and self.sigua_scale < 0:
                raise BenchError(f"--hp sigua.sigua_scale={self.sigua_scale}: must be >= 0 (it scales an ascent)")
            if self.sigua_rate is not None and not 0.0 <= self.sigua_rate <= 1.0:
                raise BenchError(f"--hp sigua.sigua_rate={self.sigua_rate}: must lie in [0, 1]")

    @classmethod
    def resolve(cls, hparams, facts: TrialFacts) -> Resolution:
        """τ from the noise rate (utils.py), then γ and sigua_rate as the official script runs this noise."""
        resolved = fill_forget_rate("sigua", hparams, facts.noise_rate,
                                    "the nominal noise rate (bhanML/SIGUA utils.py: forget_rate = noise_rate)")
        hparams, sources = resolved.hparams, dict(resolved.sources)
        filled = {}
        if hparams.script is None:
            filled["script"] = "cifar10"
            sources["script"] = "scripts/cifar10_sigua_sl.sh (bhanML/SIGUA), the default outside protocol original"
        script = filled.get("script", hparams.script)
        scale, rate = script_values(script, facts.noise_kind, hparams.forget_rate)
        where = f"bhanML/SIGUA scripts/{script}_sigua_sl.sh ({facts.noise_kind} noise, forget rate {hparams.forget_rate:g})"
        for name, value in (("sigua_scale", scale), ("sigua_rate", rate)):
            if getattr(hparams, name) is None:
                filled[name], sources[name] = value, where
        return Resolution(dataclasses.replace(hparams, **filled), sources)

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)
        hparams = self.hparams
        self.forget_rate, self.sigua_scale, self.sigua_rate = hparams.forget_rate, hparams.sigua_scale, hparams.sigua_rate
        # One entry per reference epoch: evaluation-only epoch 0 plus the ctx.epochs trained ones.
        self.schedule = forget_rate_schedule(self.forget_rate, hparams.num_gradual, hparams.exponent, ctx.epochs + 1)

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        rate = forget_rate_at(self.schedule, epoch)
        num_keep = num_remembered(len(batch), rate)
        logits = self.net(batch.images)
        losses = F.cross_entropy(logits, batch.labels, reduction="none")
        # A diverging ascent shows up as a non-finite loss, which the trainer turns into a
        # failed trial (TrainingDiverged) -- never clamped here.
        loss, kept, ascent = sigua_sl_loss(losses, num_keep, self.sigua_rate, self.sigua_scale)
        return StepOutput(
            loss=loss,
            # ascent_label_precision: the share of ascended samples whose label is clean (should be low).
            selected={"": kept, "ascent_": ascent},
            stats={
                "forget_rate": torch.full((), rate, device=logits.device),
                # Mean CE of the ascended samples: it should grow as the net forgets their labels.
                "ascent_loss": (losses.detach() * ascent).sum() / ascent.sum().clamp_min(1.0),
            },
        )

    def predict(self, images: Tensor) -> Tensor:
        return self.net(images)
