"""The Method interface's epoch plan (methods/base.py EpochPlan, TrainPass; bench/trainer/passes.py):
a plain plan is one pass over the training split in the shared seeded order with one optimiser, and
a method's passes draw their subsets, step their networks and cycle their companions as declared;
its lr, round and phase reach the metrics line, and a plan that says finished ends the trial."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.passes import group_parameters, optimizer_groups, pass_batches
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.spec import TrialSpec
from noisybench.methods import get_method, method_names
from noisybench.methods.base import PLAIN_EPOCH, Batch, EpochPlan, Method, StepOutput, TrainPass


def digits_setup(method: str, epochs: int = 2, batch_size: int | None = None):
    spec = TrialSpec(dataset="digits", method=method, noise="sym:0.4", seed=0, protocol="quick", epochs=epochs,
                     batch_size=batch_size)
    return setup_trial(spec, torch.device("cpu"))


def record_batches(method: Method) -> list[Batch]:
    """Wrap ``method.train_step`` so that the batches the trainer hands it are kept, in order."""
    seen, step = [], method.train_step

    def recording(batch, epoch):
        seen.append(batch)
        return step(batch, epoch)

    method.train_step = recording
    return seen


@pytest.mark.parametrize("name", ["standard", "coteaching", "me_momentum"])
def test_a_plain_epoch_is_one_shared_seeded_order_over_the_split_with_one_optimiser(name, one_cpu_thread):
    trainer = Trainer(digits_setup(name))
    seen = record_batches(trainer.method)
    trainer.train_epoch(0)
    # The order every method of (dataset, model, seed) draws in epoch 0, cut at the protocol's batch size
    # (Me-Momentum's first outer loop trains on its whole set, so its one pass draws the same).
    g = torch.Generator().manual_seed(trainer.setup.shared_seed("order", 0))
    train_idx = trainer.data.train_idx
    order = train_idx[torch.randperm(train_idx.numel(), generator=g)]
    assert torch.equal(torch.cat([b.index for b in seen]), order)
    assert [len(b) for b in seen][:-1] == [trainer.recipe.batch_size] * (len(seen) - 1)
    assert [b.step for b in seen] == list(range(len(seen))) and {b.net for b in seen} == {None}
    [optimizer] = trainer.optimizers
    trainable = [p for p in trainer.method.parameters() if p.requires_grad]
    assert [id(p) for group in optimizer.param_groups for p in group["params"]] == [id(p) for p in trainable]


@pytest.mark.parametrize("name", [m for m in method_names() if not get_method(m).optimizer_per_network])
def test_the_default_optimiser_holds_every_parameter_in_module_order(name):
    method = digits_setup(name).method
    assert [id(p) for p in group_parameters(optimizer_groups(method))[0]] == [id(p) for p in method.parameters()]


@pytest.mark.parametrize("name", [m for m in method_names() if get_method(m).epoch_plan is Method.epoch_plan])
def test_the_default_plan_is_a_plain_epoch(name):
    trainer = Trainer(digits_setup(name))
    assert trainer.method.epoch_plan(0, trainer.view) is PLAIN_EPOCH
    assert PLAIN_EPOCH == EpochPlan(passes=(TrainPass(net=None, subset=None, companion=None, batch_size=None),),
                                    lr_factor=None, round=1, phase="train", finished=None)


def test_a_plan_takes_a_list_of_passes_and_needs_one_unless_finished():
    assert EpochPlan(passes=[TrainPass()]).passes == (TrainPass(),)
    assert EpochPlan(passes=(), finished="done").finished == "done"
    with pytest.raises(ValueError, match="at least one pass"):
        EpochPlan(passes=())


class TwoNets(Method):
    """A toy method: pass 0 trains net1 on ``subset_a`` with ``companion`` alongside; pass 1 net2 on ``subset_b``."""

    name = "two_nets"
    optimizer_per_network = True

    def __init__(self, ctx, subset_a, companion, subset_b):
        super().__init__(None, ctx)
        self.net1, self.net2 = ctx.build_network(0), ctx.build_network(1)
        self.subset_a, self.companion, self.subset_b = subset_a, companion, subset_b
        self.seen: list[tuple[int | None, int, Tensor, Tensor | None]] = []

    def epoch_plan(self, epoch, trainer):
        return EpochPlan(passes=(TrainPass(net=0, subset=self.subset_a, companion=self.companion, batch_size=16),
                                 TrainPass(net=1, subset=self.subset_b)))

    def train_step(self, batch, epoch):
        self.seen.append((batch.net, batch.step, batch.index, None if batch.companion is None
                          else batch.companion.index))
        net = self.net1 if batch.net == 0 else self.net2
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
    assert {net for net, *_ in seen} == {0}  # pass 1 has an empty subset: no steps
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
    # Only the network of pass 0 moved: each network has its own optimiser.
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
    batches = list(pass_batches(TrainPass(net=1), order, None, to_input, torch.arange(4), augmenting=True))
    first = batches[0]
    assert first.net == 1 and first.images[0, 0] == 0
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


class Planned(Method):
    """A toy whose plan keeps the protocol's lr in epoch 1 and halves it after, numbers its rounds,
    and says finished once ``stop_after`` epochs are planned (a buffer: the checkpoint carries it)."""

    name = "planned"
    has_stopping_rule = True

    def __init__(self, ctx, stop_after: int):
        super().__init__(None, ctx)
        self.net = ctx.build_network(0)
        self.stop_after = stop_after
        self.register_buffer("epochs_planned", torch.zeros((), dtype=torch.long))
        self.plans_asked = 0

    def epoch_plan(self, epoch, trainer):
        self.plans_asked += 1
        if int(self.epochs_planned) >= self.stop_after:
            return EpochPlan(finished=f"{self.stop_after} epochs were enough")
        self.epochs_planned += 1
        return EpochPlan(lr_factor=None if epoch == 0 else 0.5, round=epoch + 1, phase="toy")

    def train_step(self, batch, epoch):
        return StepOutput(loss=F.cross_entropy(self.net(batch.images), batch.labels))

    def predict(self, images):
        return self.net(images)


def planned_trainer(stop_after: int, epochs: int = 5) -> Trainer:
    setup = digits_setup("standard", epochs=epochs)
    return Trainer(dataclasses.replace(setup, method=Planned(setup.method.ctx, stop_after)))


def test_the_plan_sets_lr_round_and_phase_and_its_finish_ends_the_trial_and_its_resume(one_cpu_thread):
    trainer = planned_trainer(stop_after=3)
    lines = trainer.run()
    base = trainer.recipe.lr
    assert [(m["lr"], m["round"], m["phase"]) for m in lines] == [(base, 1, "toy"), (base * 0.5, 2, "toy"),
                                                                  (base * 0.5, 3, "toy")]
    assert trainer.method.plans_asked == 4  # the fourth plan said finished: epoch 4 never trained
    assert trainer.end_note == "stopped early at epoch 3 of its 5-epoch budget: 3 epochs were enough"
    # Resumed from the checkpoint of its last epoch, it trains no further.
    resumed = planned_trainer(stop_after=3)
    assert resumed.load_state_dict(trainer.state_dict(3)) == 3
    assert resumed.run(3) == [] and resumed.end_note == trainer.end_note
    # A method may stop before its first epoch, too.
    never = planned_trainer(stop_after=0)
    assert never.run() == [] and never.end_note.startswith("stopped early at epoch 0 of its 5-epoch budget")


def test_a_method_finishing_at_its_last_epoch_is_told_from_one_its_budget_stopped(one_cpu_thread):
    at_budget = planned_trainer(stop_after=3, epochs=3)
    assert len(at_budget.run()) == 3
    assert at_budget.end_note == "finished at epoch 3, the last of its budget: 3 epochs were enough"
    cut = planned_trainer(stop_after=4, epochs=3)
    assert len(cut.run()) == 3 and cut.end_note.startswith("stopped at its epoch budget (3 epochs")
