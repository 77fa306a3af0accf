"""An epoch's passes (methods/base.py EpochPlan, TrainPass) as batches, and a method's optimisers.

A plain epoch is one pass over the training split stepping one optimiser; a method's plan may ask
for several passes, each over its own subset, training one of its networks (stepping that
network's optimiser where it declares one per network), with a companion set drawn alongside
(DivideMix trains net 1 on net 2's labelled split with the unlabelled split as companion, then
net 2 on net 1's).  Every order is a seeded stream shared by the methods of (dataset, model,
seed); the first pass of an epoch draws the order a plain epoch draws.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from noisybench.core.errors import BenchError
from noisybench.methods.base import Batch, Method, TrainPass


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


def epoch_batches(order: Tensor, batch_size: int, drop_last: bool = False, max_steps: int | None = None
                  ) -> list[Tensor]:
    """An epoch's sample order cut into batches.  The last partial batch is kept unless it holds a
    single sample (BatchNorm cannot train on one) or ``drop_last`` drops every partial batch;
    ``max_steps`` keeps only the first that many (Co-teaching's 401-step epochs: recipe fields)."""
    batches = list(order.split(batch_size))
    if len(batches) > 1 and batches[-1].shape[0] == 1:
        batches.pop()
    elif drop_last and batches and batches[-1].shape[0] < batch_size:
        batches.pop()
    if drop_last and not batches:
        raise BenchError(f"{order.shape[0]} training samples make no full batch of {batch_size} and the recipe "
                         "drops partial batches (drop_last); use a smaller --batch-size")
    return batches[:max_steps]


def optimizer_groups(method: Method) -> list[list[nn.Module]]:
    """The modules of each optimiser the trainer builds: one per network of ``networks()`` where the
    method declares ``optimizer_per_network`` (DivideMix), else one over every parameter of the method."""
    return [[network] for network in method.networks()] if method.optimizer_per_network else [[method]]


def group_parameters(groups: list[list[nn.Module]]) -> list[list[nn.Parameter]]:
    """Each group's parameters, in module order, each parameter in one group only."""
    seen: set[int] = set()
    out = []
    for modules in groups:
        params = []
        for module in modules:
            for p in module.parameters():
                if id(p) in seen:
                    raise ValueError("optimizer_per_network: a parameter is in two networks; each belongs to one")
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
        return Batch(to_input(index), labels[index], index, net=train_pass.net, step=step,
                     companion=other, draw_view=draw)

    for step, index in enumerate(order):
        yield batch_of(index, step, True)
