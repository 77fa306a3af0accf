"""The Method interface's passes and optimiser groups (methods/base.py TrainPass, optimizer_groups;
bench/trainer/passes.py): a plain epoch is exactly the single pass the trainer ran before them, and a
method's passes draw their subsets, step their groups and cycle their companions as declared."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.meter import EpochMeter
from noisybench.bench.trainer.optim import build_optimizer
from noisybench.bench.trainer.passes import group_parameters, pass_batches
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.spec import TrialSpec
from noisybench.methods import method_names
from noisybench.methods.base import Batch, Method, StepOutput, TrainPass


def digits_setup(method: str, epochs: int = 2, batch_size: int | None = None):
    spec = TrialSpec(dataset="digits", method=method, noise="sym:0.4", seed=0, protocol="quick", epochs=epochs,
                     batch_size=batch_size)
    return setup_trial(spec, torch.device("cpu"))


def old_single_pass_epoch(trainer: Trainer, epoch: int, max_steps: int | None = None) -> dict[str, float]:
    """Trainer.train_epoch as it was before passes and groups: one seeded order, one optimiser."""
    data, method = trainer.data, trainer.method
    method.train()
    meter = EpochMeter(data)
    augment_gen = trainer.generator("augment", epoch) if data.augment else None
    for index in trainer.batch_order(epoch):
        batch = Batch(data.train_input(index, augment_gen), data.noisy[index], index)
        with data.arithmetic.autocast(data.device):
            out = method.train_step(batch, epoch)
        trainer.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        trainer.optimizer.step()
        meter.add(out, index)
        if meter.steps == max_steps:
            break
    return meter.read()


def without_seconds(lines):
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


@pytest.mark.parametrize("name", ["standard", "coteaching", "me_momentum"])
def test_a_plain_epoch_is_the_old_single_pass(name, one_cpu_thread):
    new = Trainer(digits_setup(name))
    old = Trainer(digits_setup(name))
    # The old trainer's one optimiser over every parameter of the method.
    old.optimizers = [build_optimizer(old.recipe, old.method.parameters(), old.data.arithmetic.fused)]
    old.train_epoch = lambda epoch, max_steps=None: old_single_pass_epoch(old, epoch, max_steps)
    assert without_seconds(new.run()) == without_seconds(old.run())


@pytest.mark.parametrize("name", [m for m in method_names() if m != "dividemix"])
def test_the_default_group_is_every_parameter_in_module_order(name):
    method = digits_setup(name).method
    assert type(method).optimizer_groups is Method.optimizer_groups
    assert [id(p) for p in group_parameters(method.optimizer_groups())[0]] == [id(p) for p in method.parameters()]
    assert method.train_passes(0) == [TrainPass()]


class TwoNets(Method):
    """A toy method: pass "a" trains net1 on ``subset_a`` with ``companion`` alongside; pass "b" net2 on ``subset_b``."""

    name = "two_nets"

    def __init__(self, ctx, subset_a, companion, subset_b):
        super().__init__(None, ctx)
        self.net1, self.net2 = ctx.build_network(0), ctx.build_network(1)
        self.subset_a, self.companion, self.subset_b = subset_a, companion, subset_b
        self.seen: list[tuple[str, int, Tensor, Tensor | None]] = []

    def optimizer_groups(self):
        return [[self.net1], [self.net2]]

    def train_passes(self, epoch):
        return [TrainPass("a", subset=self.subset_a, group=0, companion=self.companion, batch_size=16),
                TrainPass("b", subset=self.subset_b, group=1)]

    def train_step(self, batch, epoch):
        self.seen.append((batch.pass_name, batch.step, batch.index, None if batch.companion is None
                          else batch.companion.index))
        net = self.net1 if batch.pass_name == "a" else self.net2
        return StepOutput(loss=F.cross_entropy(net(batch.images), batch.labels))

    def predict(self, images):
        return self.net1(images)



def toy_trainer(subset_b_size: int):
    setup = digits_setup("coteaching", epochs=1)
    n = setup.data.num_train
    g = torch.Generator().manual_seed(1)
    subset_a = torch.rand(n, generator=g) < 0.3
    companion = torch.zeros(n, dtype=torch.bool)
    companion[:40] = True  # 40 samples, batches of 16: used up every 3 steps, then drawn anew
    subset_b = torch.zeros(n, dtype=torch.bool)
    subset_b[:subset_b_size] = True
    toy = TwoNets(setup.method.ctx, subset_a, companion, subset_b)
    return Trainer(dataclasses.replace(setup, method=toy)), subset_a, companion


def test_passes_draw_their_subsets_in_their_batch_size_with_companions_cycled(one_cpu_thread):
    trainer, subset_a, companion = toy_trainer(subset_b_size=0)
    net2_before = [p.detach().clone() for p in trainer.method.net2.parameters()]
    net1_before = [p.detach().clone() for p in trainer.method.net1.parameters()]
    trainer.run()
    seen = trainer.method.seen
    assert {name for name, *_ in seen} == {"a"}  # pass "b" has an empty subset: no steps
    drawn = torch.cat([index for _, _, index, _ in seen])
    expected = trainer.data.train_idx[subset_a[trainer.data.train_idx]]
    assert sorted(drawn.tolist()) == sorted(expected.tolist())  # every sample of the subset once
    assert [step for _, step, _, _ in seen] == list(range(len(seen)))
    assert all(index.shape[0] <= 16 for _, _, index, _ in seen)
    companions = [c for *_, c in seen]
    assert all(bool(companion[c].all()) for c in companions)
    for cycle in range(len(companions) // 3):  # each cycle of 3 batches (16, 16, 8) covers the set once
        assert sorted(torch.cat(companions[3 * cycle:3 * cycle + 3]).tolist()) == list(range(40))
    assert not torch.equal(torch.cat(companions[0:3]), torch.cat(companions[3:6]))  # drawn anew
    # Only pass "a"'s group moved.
    assert all(torch.equal(a, b) for a, b in zip(net2_before, trainer.method.net2.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(net1_before, trainer.method.net1.parameters()))


def test_a_checkpoint_carries_every_optimizer(one_cpu_thread):
    trainer, *_ = toy_trainer(subset_b_size=100)
    trainer.run()
    state = trainer.state_dict(1)
    assert len(state["optimizers"]) == 2 and all(s["state"] for s in state["optimizers"])
    fresh, *_ = toy_trainer(subset_b_size=100)
    fresh.load_state_dict(state)
    for a, b in zip(trainer.optimizers, fresh.optimizers):
        assert a.state_dict()["param_groups"] == b.state_dict()["param_groups"]
        for sa, sb in zip(a.state_dict()["state"].values(), b.state_dict()["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    one = Trainer(digits_setup("standard"))
    with pytest.raises(ValueError, match="2 optimiser states"):
        one.load_state_dict({**one.state_dict(0), "optimizers": state["optimizers"]})


def test_batches_draw_further_views_from_the_augmenting_gather():
    draws = iter(range(100))
    to_input = lambda index: torch.full((index.shape[0], 1), float(next(draws)))  # noqa: E731
    order = [torch.tensor([0, 1]), torch.tensor([2, 3])]
    batches = list(pass_batches(TrainPass("p"), order, None, to_input, torch.arange(4), augmenting=True))
    first = batches[0]
    assert first.pass_name == "p" and first.images[0, 0] == 0
    v1, v2 = first.views(2)
    assert (v1[0, 0], v2[0, 0]) == (2.0, 3.0)  # fresh draws, after the second batch's own view
    plain = list(pass_batches(TrainPass(), order, None, to_input, torch.arange(4), augmenting=False))[0]
    assert plain.views(1)[0] is plain.images  # without augmentation the view is the input again
    hand_built = Batch(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.arange(2))
    assert hand_built.views(1)[0] is hand_built.images


def test_map_train_is_the_function_over_every_unaugmented_sample_in_eval_mode():
    trainer = Trainer(digits_setup("coteaching"))
    method = trainer.method
    method.train()
    out = trainer.view.map_train(method.net2)
    method.eval()
    with torch.no_grad():
        expected = method.net2(trainer.data.to_input(trainer.data.images))
    assert out.shape == (trainer.data.num_train, trainer.num_classes) and torch.allclose(out, expected)
    method.train()
    trainer.view.map_train(method.net1)
    assert method.training  # the mode it had is restored
