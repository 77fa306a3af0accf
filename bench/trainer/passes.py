"""An epoch as a method's passes (methods/base.py TrainPass) and its optimisers as groups.

A plain epoch is one pass over the training split stepping one optimiser; a method may ask for
several passes, each over its own subset, stepping its own optimiser group, with a companion set
drawn alongside (DivideMix trains net 1 on net 2's labelled split with the unlabelled split as
companion, then net 2 on net 1's).  Every order is a seeded stream shared by the methods of
(dataset, model, seed); the first pass of an epoch draws the order a plain epoch draws.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from noisybench.methods.base import Batch, TrainPass


class OptimizerSet:
    """Several optimisers stepped together: ``Trainer.optimizer`` when a method has more than one
    group (one group: that optimiser itself), for callers that step, zero or set the lr of all."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def state_dict(self) -> list[dict]:
        return [optimizer.state_dict() for optimizer in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        for optimizer, state in zip(self.optimizers, states, strict=True):
            optimizer.load_state_dict(state)


def group_parameters(groups: list[list[nn.Module]]) -> list[list[nn.Parameter]]:
    """Each group's parameters, in module order, each parameter in one group only."""
    seen: set[int] = set()
    out = []
    for modules in groups:
        params = []
        for module in modules:
            for p in module.parameters():
                if id(p) in seen:
                    raise ValueError("optimizer_groups(): a parameter is in two groups; each network belongs to one")
                seen.add(id(p))
                params.append(p)
        out.append(params)
    return out


def subset_indices(train_idx: Tensor, mask: Tensor) -> Tensor:
    """The training-split indices where the bool ``mask`` over all samples is True."""
    return train_idx[mask.to(train_idx.device)[train_idx]]


def seeded_order(idx: Tensor, seed: int) -> Tensor:
    g = torch.Generator()
    g.manual_seed(seed)
    return idx[torch.randperm(idx.shape[0], generator=g).to(idx.device)]


class CompanionBatches:
    """A companion set's batches, endlessly: a seeded order cut into batches by ``cut``, drawn anew
    (the next ``cycle``'s seed) each time it is used up, as re-iterating a shuffled DataLoader does."""

    def __init__(self, idx: Tensor, cut: Callable[[Tensor], list[Tensor]], seed_of_cycle: Callable[[int], int]):
        self.idx, self.cut, self.seed_of_cycle = idx, cut, seed_of_cycle
        self.cycle, self.pending = 0, []

    def next(self) -> Tensor:
        if not self.pending:
            self.pending = self.cut(seeded_order(self.idx, self.seed_of_cycle(self.cycle)))
            self.cycle += 1
        return self.pending.pop(0)


def pass_batches(train_pass: TrainPass, order: list[Tensor], companion: CompanionBatches | None,
                 to_input: Callable[[Tensor], Tensor], labels: Tensor, augmenting: bool) -> Iterator[Batch]:
    """The pass's batches in ``order``: inputs drawn by ``to_input`` (the trainer's augmenting
    gather), each batch able to draw further views, and with a companion batch when there is one."""

    def batch_of(index: Tensor, step: int, with_companion: bool) -> Batch:
        draw = (lambda: to_input(index)) if augmenting else None
        other = batch_of(companion.next(), step, False) if with_companion and companion is not None else None
        return Batch(to_input(index), labels[index], index, pass_name=train_pass.name, step=step,
                     companion=other, draw_view=draw)

    for step, index in enumerate(order):
        yield batch_of(index, step, True)
