"""Small-loss selection shared by Co-teaching, JoCoR and SIGUA.

Han et al., "Co-teaching: Robust training of deep neural networks with extremely noisy
labels", NeurIPS 2018: keep the R(T)·B samples of a mini-batch with the smallest loss,
where the forget rate 1 − R(T) grows from 0 to τ over the first T_k epochs.  JoCoR
(Wei et al., CVPR 2020) and SIGUA (Han et al., ICML 2020) reuse the schedule verbatim
from bhanML/Co-teaching main.py, so it lives here once.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

from noisybench.core.errors import BenchError
from noisybench.methods.base import Resolution


def forget_rate_schedule(forget_rate: float, num_gradual: int, exponent: float, length: int) -> list[float]:
    """The reference ``rate_schedule`` array (bhanML/Co-teaching main.py), entry by entry.

    ``ones(length) * τ`` with the first ``num_gradual`` entries replaced by
    ``linspace(0, τ**exponent, num_gradual)``.  Note the ramp ends at τ**c, not τ, and the
    entry after it jumps to τ: that is the reference's behaviour for c ≠ 1, kept as is.
    """
    schedule = np.ones(length) * forget_rate
    schedule[:num_gradual] = np.linspace(0, forget_rate**exponent, num_gradual)[:length]
    return [float(r) for r in schedule]


def forget_rate_at(schedule: list[float], epoch: int) -> float:
    """Forget rate for the trainer's 0-based trained ``epoch``.

    The reference loop's epoch 0 only evaluates the untrained nets and training runs over
    epochs 1 .. n_epoch−1, indexing the schedule by that number: our first trained epoch
    therefore uses entry 1 (τ/9 with num_gradual = 10), never the entry-0 rate of 0.
    Past the array's end the rate stays at its last value (τ).
    """
    return schedule[min(epoch + 1, len(schedule) - 1)]


def num_remembered(batch_size: int, forget_rate: float) -> int:
    """``int((1 − rate) · B)``: the reference's count of kept samples (truncated, not rounded)."""
    return int((1 - forget_rate) * batch_size)


def small_loss_order(losses: Tensor) -> Tensor:
    """Batch positions sorted by ascending loss (ties by position, so runs are reproducible).

    The loss values are only compared, never differentiated: selection is on ``loss.data``
    as in the reference's ``np.argsort(loss.data)``.
    """
    return torch.argsort(losses.detach(), stable=True)


def small_loss_mask(losses: Tensor, num_keep: int) -> Tensor:
    """0/1 float mask (same shape as ``losses``) of the ``num_keep`` smallest losses.

    Co-teaching (Han et al. 2018), Alg. 1 step 4: the small-loss instances are the
    probably-clean ones, because deep nets fit clean labels before noisy ones.
    """
    keep = small_loss_order(losses)[:num_keep]
    return torch.zeros_like(losses, dtype=torch.float32).index_fill_(0, keep, 1.0)


def masked_mean(values: Tensor, mask: Tensor, count: int) -> Tensor:
    """Sum of ``values`` over ``mask`` divided by ``count`` (the static number kept), so the
    step needs no host read of the mask; zero when nothing is kept."""
    return (values * mask).sum() / max(count, 1)


def resolve_forget_rate(method: str, forget_rate: float | None, noise_rate: float | None) -> float:
    """τ: the ``forget_rate`` hyperparameter, else the trial's nominal noise rate (the papers'
    default: τ = ε, assumed known).  Unknown noise rate and no override is a user error."""
    if forget_rate is None:
        if noise_rate is None:
            raise BenchError(
                f"{method} needs a forget rate and this noise has no known noise rate; give one with "
                f"--hp {method}.forget_rate=R, e.g. --hp {method}.forget_rate=0.2"
            )
        forget_rate = noise_rate
    if not 0.0 <= forget_rate < 1.0:
        raise BenchError(f"--hp {method}.forget_rate={forget_rate}: must lie in [0, 1)")
    return float(forget_rate)


def fill_forget_rate(method: str, hparams, noise_rate: float | None,
                     source: str = "the nominal noise rate (bhanML/Co-teaching main.py: forget_rate = noise_rate)"
                     ) -> Resolution:
    """``Method.resolve`` of the small-loss methods: a forget rate left None becomes ``noise_rate``
    (checked by :func:`resolve_forget_rate`, which refuses an unknown rate in one line)."""
    rate = resolve_forget_rate(method, hparams.forget_rate, noise_rate)
    if hparams.forget_rate is not None:
        return Resolution(hparams)
    return Resolution(dataclasses.replace(hparams, forget_rate=rate), {"forget_rate": source})


def check_schedule_hparams(method: str, hparams) -> None:
    """Shared ``validate()`` checks for the small-loss methods' schedule hyperparameters
    (``forget_rate``, ``num_gradual``, ``exponent``)."""
    if hparams.num_gradual < 1:
        raise BenchError(f"--hp {method}.num_gradual={hparams.num_gradual}: must be at least 1 (epochs of the ramp)")
    if hparams.exponent <= 0:
        raise BenchError(f"--hp {method}.exponent={hparams.exponent}: must be positive")
    if hparams.forget_rate is not None and not 0.0 <= hparams.forget_rate < 1.0:
        raise BenchError(f"--hp {method}.forget_rate={hparams.forget_rate}: must lie in [0, 1)")
    # A forget rate taken from the noise rate is checked once resolved (resolve_forget_rate).
