"""The small interface every method implements (in the spirit of DomainBed's Algorithm).

A method owns its network(s) and turns one batch into one loss.  The shared trainer
(bench/train.py) does everything else: data on the device, augmentation, the optimiser
and its schedule, evaluation, metrics, checkpoints.  Clean labels never reach a method;
what a method selects or corrects is reported back in :class:`StepOutput` and the
trainer scores it against the clean labels it keeps back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Batch:
    """One training batch, on the device.

    ``images`` are normalised (and augmented) floats; ``labels`` the noisy labels the
    method may learn from; ``index`` each sample's position in the training set, so
    that per-sample state (a running label, a confident set) can be kept.
    """

    images: Tensor
    labels: Tensor
    index: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class StepOutput:
    """What one training step returns.

    loss:       the scalar to back-propagate (the trainer calls backward and steps).
    selected:   name -> per-sample weight in [0, 1] (a 0/1 mask for selection methods),
                scored by the trainer as precision / recall against the clean labels
                (``{name}precision``, ``{name}recall``, ``{name}weight_clean`` ...).
                Use "" for a method's single selection, "net2_" etc. for more.
    relabelled: name -> per-sample class predictions the method trains towards (LEND's
                diluted labels, self-learning's corrected labels); scored as
                ``{name}_acc`` against the clean labels.
    stats:      name -> scalar tensor averaged over the epoch's steps.
    """

    loss: Tensor
    selected: dict[str, Tensor] = field(default_factory=dict)
    relabelled: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodContext:
    """What a method may know about its trial (never the clean labels).

    ``build_network`` returns a fresh network of the protocol's model, on the device,
    initialised from ``network_generator(i)``-derived seeds so that the i-th network of
    a trial is the same on every run.
    """

    num_classes: int
    num_train: int
    epochs: int
    noise_kind: str
    noise_rate: float | None  # the nominal rate (Co-teaching's tau); None when unknown
    device: torch.device
    seed: int
    build_network: Callable[[int], nn.Module]

    def generator(self, *stream: int) -> torch.Generator:
        """A torch Generator on the CPU for the method's own randomness, seeded by
        (trial seed, *stream) -- e.g. ``ctx.generator(epoch)`` -- never the global RNG."""
        from bench.seeding import derive_seed

        g = torch.Generator()
        g.manual_seed(derive_seed("method", self.seed, *stream))
        return g


class Method(nn.Module):
    """Base class: subclasses set ``Hparams`` (a dataclass) and implement ``train_step``.

    Networks are sub-modules; per-sample state is a registered buffer, so that
    ``state_dict`` (the checkpoint) carries everything a resumed trial needs.
    """

    Hparams: ClassVar[type]
    name: ClassVar[str] = ""

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__()
        self.hparams = hparams
        self.ctx = ctx

    # --- the trainer calls these -------------------------------------------------
    def networks(self) -> list[nn.Module]:
        """The networks the trainer optimises (one optimiser over all of them)."""
        return [m for m in self.children() if isinstance(m, nn.Module)]

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        raise NotImplementedError

    def predict(self, images: Tensor) -> Tensor:
        """Logits of the evaluated network (net 1 for two-network methods)."""
        raise NotImplementedError

    def predict_extra(self, images: Tensor) -> dict[str, Tensor]:
        """Logits of further networks worth recording, e.g. {"net2": ...} -> test_acc_net2."""
        return {}

    def on_epoch_start(self, epoch: int, trainer: "TrainerView") -> None:
        """Called before each epoch's steps; phase-based methods work here."""

    def on_epoch_end(self, epoch: int, trainer: "TrainerView") -> dict[str, float]:
        """Called after each epoch's evaluation; returns extra metrics for the epoch line."""
        return {}


class TrainerView:
    """What the trainer offers to epoch hooks (see bench/train.py for the implementation)."""

    def predict_train(self, augment: bool = False) -> Tensor:  # logits (N, C) of the evaluated net
        raise NotImplementedError

    def embed_train(self) -> tuple[Tensor, Tensor]:  # (features (N, d), logits (N, C))
        raise NotImplementedError

    @property
    def noisy_labels(self) -> Tensor:
        raise NotImplementedError
