"""Details of the official code that change numbers, each reachable by name: Me-Momentum's
augmented and rounded validation, SIGUA's MNIST script values, the 401-step epochs of
Co-teaching / JoCoR / SIGUA, GCE's lost step in its pruning epochs, JoCoR's 199 MNIST epochs.

Each test is built so that the official reading and the other one give different results.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from noisybench.bench.checks import recipe_changes
from noisybench.bench.trainer.protocols import PROTOCOLS, RECIPE_FIELDS_ADDED, resolve_recipe
from noisybench.bench.trainer.evaluate import balanced_accuracy
from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.passes import epoch_batches
from noisybench.bench.trainer.optim import lr_and_beta1
from noisybench.bench.trainer.records import spec_record
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec
from noisybench.datasets.registry import Dataset
from noisybench.methods import build_method, get_method, method_names
from noisybench.methods.base import Batch, MethodContext, TrainerView
from noisybench.methods.me_momentum import validation_percent
from noisybench.methods.sigua import script_values

DATASETS = ["digits", "mnist", "cifar10", "cifar100", "animal10n", "food101n", "clothing1m"]


def context(num_train=8, num_classes=3, epochs=100, noise_kind="sym", noise_rate=0.4, batch_norm=False):
    def build_network(i: int) -> nn.Module:
        torch.manual_seed(200 + i)  # test-only nets
        layers = [nn.Flatten(), nn.Linear(4, num_classes)] + ([nn.BatchNorm1d(num_classes)] if batch_norm else [])
        return nn.Sequential(*layers)

    return MethodContext(num_classes=num_classes, num_train=num_train, epochs=epochs, noise_kind=noise_kind,
                         noise_rate=noise_rate, device=torch.device("cpu"), seed=0, build_network=build_network)


def mnist_shaped(train_size=300, test_size=50) -> Dataset:
    """Random 1x28x28 images standing in for MNIST, so that its `original` recipes can be set up."""
    rng = np.random.default_rng(0)
    return Dataset(
        name="mnist", train_images=rng.integers(0, 256, size=(train_size, 1, 28, 28), dtype=np.uint8),
        train_labels=np.arange(train_size, dtype=np.int64) % 10,
        test_images=rng.integers(0, 256, size=(test_size, 1, 28, 28), dtype=np.uint8),
        test_labels=np.arange(test_size, dtype=np.int64) % 10, class_names=tuple(str(i) for i in range(10)))


# --------------------------------------------------------------------------------------
# 2. Me-Momentum: validation through transform_train, rounded to 2 decimals
# --------------------------------------------------------------------------------------
def test_validation_percent_rounds_as_evaluate_val():
    assert validation_percent(0.600049, 2) == 60.0
    assert validation_percent(0.600049, None) == pytest.approx(60.0049)
    assert validation_percent(0.60005, 2) == float(np.round(60.005, 2))  # numpy's rounding of a float64
    assert validation_percent(0.123456, 1) == 12.3


class ValidationView(TrainerView):
    """Hands Me-Momentum's on_epoch_end a fixed validation, clean or augmented."""

    def __init__(self, clean: list[float], augmented: list[float], num_train: int):
        self.clean, self.augmented, self.asked = list(clean), list(augmented), []
        self.index = torch.arange(num_train)

    def validation_accuracy(self, augment=False):
        self.asked.append(augment)
        return {"val_acc": 0.0, "val_balanced_acc": (self.augmented if augment else self.clean).pop(0)}

    @property
    def train_index(self):
        return self.index

    def report_selection(self, name, mask):
        pass


def outer_epochs(hp: dict, view: ValidationView, epochs: int) -> list[dict]:
    method = build_method("me_momentum", {"round_epochs": "50", **hp}, context())
    return [method.on_epoch_end(epoch, view) for epoch in range(epochs)]


def test_me_momentum_keeps_a_model_only_on_a_rounded_improvement_by_default():
    # 60.0041% then 60.0044%: unrounded the second beats the first (kept, n_add stays 0); rounded to
    # 2 decimals both are 60.00, so main.py keeps nothing and n_add grows to 0.1.
    vals = [0.600041, 0.600044]
    official = outer_epochs({}, ValidationView(vals, vals, 8), 2)
    assert [m["n_add"] for m in official] == pytest.approx([0.0, 0.1])
    assert official[1]["scored_val_balanced_acc"] == pytest.approx(0.6)
    unrounded = outer_epochs({"val_round_decimals": "none"}, ValidationView(vals, vals, 8), 2)
    assert [m["n_add"] for m in unrounded] == [0.0, 0.0]
    assert unrounded[1]["kept_val_balanced_acc"] == pytest.approx(0.600044)


def test_me_momentum_scores_the_augmented_validation_by_default():
    view = ValidationView(clean=[0.7], augmented=[0.5], num_train=8)
    assert outer_epochs({}, view, 1)[0]["scored_val_balanced_acc"] == 0.5 and view.asked == [True]
    view = ValidationView(clean=[0.7], augmented=[0.5], num_train=8)
    assert outer_epochs({"val_augment": "false"}, view, 1)[0]["scored_val_balanced_acc"] == 0.7
    assert view.asked == [False]
    with pytest.raises(BenchError, match="val_round_decimals"):
        build_method("me_momentum", {"val_round_decimals": "-1"}, context())


def test_the_augmented_validation_is_the_seeded_training_transform_of_the_validation_split():
    spec = TrialSpec(dataset="digits", method="me_momentum", noise="sym:0.4", seed=0, protocol="quick", epochs=2)
    setup = setup_trial(spec, torch.device("cpu"))
    setup.data.augment = True  # quick does not augment; crop + flip as a CIFAR recipe would
    trainer = Trainer(dataclasses.replace(setup, trial=dataclasses.replace(setup.trial, recipe=dataclasses.replace(setup.recipe, augment=True))))
    trainer.validation = {k: v for k, v in trainer.evaluate().items() if k.startswith("val_")}
    view, data, method = trainer.view, trainer.data, trainer.method
    assert view.validation_accuracy() == trainer.validation  # unaugmented: evaluate()'s numbers
    trainer.epoch = 1
    augmented = view.validation_accuracy(augment=True)
    assert view.validation_accuracy(augment=True) == augmented  # seeded: the same draws again
    with torch.no_grad():
        images = data.train_input(data.val_idx, trainer.generator("val-augment", 1))
        assert not torch.equal(images, data.to_input(data.images[data.val_idx]))
        logits = method.predict(images)
    expected = balanced_accuracy(logits, data.noisy[data.val_idx], 10).item()
    assert augmented["val_balanced_acc"] == pytest.approx(expected, abs=1e-6)
    # Without augmentation in the recipe (MNIST's transform_train has none) it is the clean score.
    setup.data.augment = False
    assert view.validation_accuracy(augment=True) == trainer.validation


# --------------------------------------------------------------------------------------
# 3. SIGUA: scripts/mnist_sigua_sl.sh under `original` on MNIST
# --------------------------------------------------------------------------------------
def test_script_values_are_the_official_scripts():
    assert script_values("mnist", "pair", 0.45) == (0.001, 0.7)
    assert script_values("mnist", "sym", 0.5) == (0.01, 0.3)
    assert script_values("mnist", "sym", 0.2) == (0.01, 0.4)
    assert script_values("cifar10", "pair", 0.45) == (0.01, 0.3)
    assert script_values("cifar10", "sym", 0.2) == (0.01, 0.4)


def test_original_on_mnist_gives_sigua_the_mnist_script_and_records_it():
    spec = TrialSpec(dataset="mnist", method="sigua", noise="pair:0.45", seed=0, protocol="original")
    setup = setup_trial(spec, torch.device("cpu"), dataset=mnist_shaped())
    assert (setup.method.sigua_scale, setup.method.sigua_rate) == (0.001, 0.7)
    record = spec_record(setup)
    assert record["recipe"]["method_hparams"] == (("script", "mnist"),)
    assert record["hparams"]["script"] == "mnist"
    # --hp wins over the protocol's default; and the other protocols keep the CIFAR-10 script.
    given = setup_trial(dataclasses.replace(spec, hparams=(("script", "cifar10"),)), torch.device("cpu"),
                        dataset=mnist_shaped())
    assert (given.method.sigua_scale, given.method.sigua_rate) == (0.01, 0.3)
    assert resolve_recipe("jocor-paper", "mnist", "sigua").method_hparams == ()
    assert resolve_recipe("original", "cifar10", "sigua").method_hparams == ()
    plain = build_method("sigua", {}, context(noise_kind="pair", noise_rate=0.45))
    assert (plain.sigua_scale, plain.sigua_rate) == (0.01, 0.3)


def test_protocol_hparam_defaults_only_set_fields_that_default_to_none():
    """An --hp value equal to a field's own default is dropped from the spec (one trial for one
    setting): a protocol default on a field whose own default is not None would then override it."""
    for method in method_names():
        fields = {f.name: f.default for f in dataclasses.fields(get_method(method).Hparams)}
        for protocol in PROTOCOLS:
            for dataset in DATASETS:
                try:
                    recipe = resolve_recipe(protocol, dataset, method)
                except BenchError:
                    continue
                for name, _ in recipe.method_hparams:
                    assert fields.get(name, "missing") is None, (protocol, dataset, method, name)


# --------------------------------------------------------------------------------------
# 4. The 401-step epochs of full batches of Co-teaching, JoCoR and SIGUA under `original`
# --------------------------------------------------------------------------------------
def test_epoch_batches_count_as_the_reference_loop():
    # main.py: drop_last=True and `if i > num_iter_per_epoch: break` with 400 -> i = 0..400 train.
    mnist = epoch_batches(torch.arange(60000), 128, drop_last=True, max_steps=401)
    assert len(mnist) == 401 and {b.numel() for b in mnist} == {128}
    cifar = epoch_batches(torch.arange(50000), 128, drop_last=True, max_steps=401)
    assert len(cifar) == 390 and {b.numel() for b in cifar} == {128}
    assert len(epoch_batches(torch.arange(60000), 128)) == 469  # the project's default: the partial one too
    assert [b.numel() for b in epoch_batches(torch.arange(10), 4)] == [4, 4, 2]
    assert [b.numel() for b in epoch_batches(torch.arange(9), 4)] == [4, 4]  # a batch of one is never trained
    with pytest.raises(BenchError, match="no full batch"):
        epoch_batches(torch.arange(3), 4, drop_last=True)


@pytest.mark.parametrize("method", ["coteaching", "jocor", "sigua"])
def test_original_recipes_cut_epochs_as_main_py(method):
    for dataset in ("mnist", "cifar10", "cifar100"):
        recipe = resolve_recipe("original", dataset, method)
        assert (recipe.max_steps_per_epoch, recipe.drop_last) == (401, True), dataset
    digits = resolve_recipe("original", "digits", method)  # digits keeps quick's data handling
    assert (digits.max_steps_per_epoch, digits.drop_last) == (None, False)
    for protocol in ("lend-paper", "jocor-paper"):
        recipe = resolve_recipe(protocol, "mnist", method)
        assert (recipe.max_steps_per_epoch, recipe.drop_last) == (None, False)


def test_a_trainer_epoch_takes_exactly_the_capped_number_of_full_batches():
    spec = TrialSpec(dataset="digits", method="standard", noise="sym:0.4", seed=0, protocol="quick", epochs=1)
    setup = setup_trial(spec, torch.device("cpu"))
    num_train = setup.data.train_idx.numel()  # 1257: 12 full batches of 100 and one of 57
    sizes: list[int] = []
    step = setup.method.train_step

    def recording(batch, epoch):
        sizes.append(len(batch))
        return step(batch, epoch)

    setup.method.train_step = recording
    for changes, expected in (({"drop_last": True}, [100] * (num_train // 100)),
                              ({"drop_last": True, "max_steps_per_epoch": 5}, [100] * 5),
                              ({}, [100] * (num_train // 100) + [num_train % 100])):
        recipe = dataclasses.replace(setup.recipe, batch_size=100, **changes)
        sizes.clear()
        Trainer(dataclasses.replace(setup, trial=dataclasses.replace(setup.trial, recipe=recipe))).train_epoch(0)
        assert sizes == expected, changes


def test_new_recipe_fields_stay_out_of_old_recipes():
    """Recipes recorded before these fields existed must still read as the recipe they resolve to."""
    current = resolve_recipe("lend-paper", "cifar10", "standard").to_json()
    assert not set(RECIPE_FIELDS_ADDED) & set(current)
    assert recipe_changes(current, current) == []
    assert resolve_recipe("original", "mnist", "coteaching").to_json()["max_steps_per_epoch"] == 401


# --------------------------------------------------------------------------------------
# 5. GCE: the reference's pruning epochs give the evaluated network no gradient
# --------------------------------------------------------------------------------------
class PruneView(TrainerView):
    def __init__(self, logits, labels):
        self.logits, self.labels = logits, labels

    def predict_train(self, augment=False):
        return self.logits

    @property
    def noisy_labels(self):
        return self.labels


def gce_steps(reference_pruning_bug: bool):
    """Epoch 18 trains normally (builds SGD momentum); epoch 19 (start_prune 20) is a pruning epoch."""
    hp = {"truncated": "true", "start_prune": "20", "reference_pruning_bug": str(reference_pruning_bug)}
    method = build_method("gce", hp, context(num_train=8, batch_norm=True))
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    g = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g), torch.arange(8))
    view = PruneView(torch.zeros(8, 3), batch.labels)  # p_y = 1/3 < k: every weight pruned to 0 ...
    view.logits[torch.arange(8), batch.labels] = 5.0  # ... unless its label is confident: all kept
    method.train()
    for epoch in (18, 19):
        method.epoch_plan(epoch, view)
        before = {k: v.clone() for k, v in method.net.state_dict().items()}
        momentum = [optimizer.state[p]["momentum_buffer"].clone() for p in method.net.parameters()] if epoch == 19 else None
        optimizer.zero_grad(set_to_none=True)
        out = method.train_step(batch, epoch)
        out.loss.backward()
        grads = [p.grad.clone() for p in method.net.parameters()]
        optimizer.step()
    return method, before, momentum, grads, out


def test_gce_reference_pruning_bug_steps_the_evaluated_net_on_momentum_and_weight_decay_only():
    method, before, momentum, grads, out = gce_steps(reference_pruning_bug=True)
    assert all(torch.count_nonzero(g) == 0 for g in grads)  # zero gradients, present (PyTorch 1.2's zero_grad)
    names = [n for n, _ in method.net.named_parameters()]
    for name, p, buf in zip(names, method.net.parameters(), momentum):
        expected = before[name] - 0.1 * (0.9 * buf + 1e-2 * before[name])  # SGD with a zero gradient
        assert torch.allclose(p.detach(), expected, atol=1e-7), name
    bn = "2.running_mean"
    assert torch.equal(method.net.state_dict()[bn], before[bn])  # the copy's BatchNorm ran, not the net's
    assert out.loss.item() != 0.0 and out.selected[""].sum() == 8  # the copy's loss, pruning as usual
    method.epoch_plan(20, None)  # the next epoch trains the network again
    assert method.pruning_epoch_copy == []


def test_gce_trains_the_network_in_pruning_epochs_by_default():
    method, before, _, grads, _ = gce_steps(reference_pruning_bug=False)
    assert any(torch.count_nonzero(g) > 0 for g in grads)
    assert not torch.equal(method.net.state_dict()["2.running_mean"], before["2.running_mean"])
    with pytest.raises(BenchError, match="needs gce.truncated=true"):
        build_method("gce", {"reference_pruning_bug": "true"}, context())


# --------------------------------------------------------------------------------------
# 7. JoCoR's MNIST: 199 trained epochs, lr plan of n_epoch = 200
# --------------------------------------------------------------------------------------
def test_jocor_paper_trains_199_epochs_with_the_n_epoch_200_plan():
    recipe = resolve_recipe("jocor-paper", "mnist", "jocor")
    assert recipe.epochs == 199 and recipe.decay_start == 80
    # hongxin001/JoCoR algorithm/jocor.py: alpha_plan[i] = (n_epoch - i) / (n_epoch - 80) * lr from i = 80,
    # beta1 0.1 there; main.py trains i = 1 .. 199.
    for e in range(recipe.epochs):
        i = e + 1
        lr, beta1 = lr_and_beta1(recipe, e)
        assert lr == pytest.approx(1e-3 if i < 80 else (200 - i) / 120 * 1e-3) and beta1 == (0.9 if i < 80 else 0.1)
    assert resolve_recipe("original", "mnist", "jocor").epochs == 199
