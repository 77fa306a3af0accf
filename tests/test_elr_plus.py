"""ELR+: its ramps, weight averaging, mixup and loss on hand-built inputs, the targets from the
other network's weight average, its state across a state_dict round trip, and its recipes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisybench.bench.trainer.protocols import resolve_recipe
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec
from noisybench.methods import build_hparams
from noisybench.methods.base import Batch, MethodContext
from noisybench.methods.elr_plus import (
    ELRPlus,
    elr_plus_loss,
    ema_decay,
    mix,
    sigmoid_rampup,
    update_weight_average,
)
from noisybench.results.store import TrialStore


# ------------------------------------------------------------------------------- ramps, EMA, mixup
def test_the_sigmoid_rampup():
    assert sigmoid_rampup(5, 0) == 1.0  # coef_step 0: no ramp (CIFAR-10)
    assert math.isclose(sigmoid_rampup(0, 100), math.exp(-5))
    assert math.isclose(sigmoid_rampup(50, 100), math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(500, 100) == 1.0


def test_the_ema_decay():
    # ramp (CIFAR): ema_alpha times the ramp at step + 1
    assert math.isclose(ema_decay(1, 0.997, 40000, ramp=True), 0.997 * math.exp(-5 * (1 - 2 / 40000) ** 2))
    assert math.isclose(ema_decay(40000, 0.997, 40000, ramp=True), 0.997)
    # no ramp (Clothing1M): the true average until it would exceed ema_alpha
    assert ema_decay(1, 0.9999, 40000, ramp=False) == 0.5
    assert math.isclose(ema_decay(3, 0.9999, 40000, ramp=False), 0.75)
    assert ema_decay(10**6, 0.9999, 40000, ramp=False) == 0.9999


def test_the_weight_average_by_hand():
    average, net = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        average.weight.copy_(torch.tensor([[1.0, 2.0]]))
        average.bias.fill_(0.0)
        net.weight.copy_(torch.tensor([[3.0, 0.0]]))
        net.bias.fill_(1.0)
    update_weight_average(average, net, decay=0.75)
    assert torch.allclose(average.weight, torch.tensor([[1.5, 1.5]]))
    assert torch.allclose(average.bias, torch.tensor([0.25]))


def test_mix_by_hand():
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    mixed = mix(values, 0.75, torch.tensor([1, 2, 0]))
    assert torch.allclose(mixed, torch.tensor([[0.75, 0.25], [0.125, 0.875], [0.625, 0.375]]))


# ------------------------------------------------------------------------------- loss
def test_the_loss_by_hand():
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    labels = torch.tensor([[0.7, 0.3, 0.0]])  # a mixed one-hot
    q = torch.tensor([[0.1, 0.6, 0.3]])
    p = F.softmax(logits, dim=1)
    loss, reg = elr_plus_loss(logits, labels, q, weight=3.0, eps=1e-4, weight_labels_by_target=False)
    ce = -(labels * p.log()).sum()
    assert torch.allclose(reg, torch.log(1 - (q * p).sum()))
    assert torch.allclose(loss, ce + 3.0 * reg)
    # 100 classes: the labels are reweighted by the target, (0.07, 0.18, 0) / 0.25
    loss100, _ = elr_plus_loss(logits, labels, q, weight=0.0, eps=1e-4, weight_labels_by_target=True)
    assert torch.allclose(loss100, -(torch.tensor([[0.28, 0.72, 0.0]]) * p.log()).sum())


# ------------------------------------------------------------------------------- the method
class Scaled(nn.Module):
    """Logits = scale * inputs, through one bias-free linear layer."""

    def __init__(self, scale: float):
        super().__init__()
        self.fc = nn.Linear(3, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(scale * torch.eye(3))

    def forward(self, x, return_features=False):
        out = self.fc(x)
        return (out, x) if return_features else out


def context(num_classes=3, noise_kind="sym") -> MethodContext:
    # network i scales by i + 1: net1 x1, net2 x2, EMA 1 x3, EMA 2 x4
    return MethodContext(num_classes=num_classes, num_train=8, epochs=2, noise_kind=noise_kind, noise_rate=0.4,
                         device=torch.device("cpu"), seed=0, build_network=lambda i: Scaled(i + 1.0))


def test_each_network_takes_its_targets_from_the_other_ones_weight_average():
    method = ELRPlus(build_hparams("elr_plus"), context())
    assert method.networks() == [method.net1, method.net2]
    assert not any(p.requires_grad for p in method.ema1.parameters())
    method.epoch_plan(0, None)
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    out = method.train_step(Batch(x, torch.tensor([0, 1]), torch.tensor([2, 6])), epoch=0)
    # Step 1, no EMA update yet: targets 1 from EMA 2 (x4), targets 2 from EMA 1 (x3), each 0.3 * softmax.
    assert torch.allclose(method.targets1[[2, 6]], 0.3 * F.softmax(4 * x, dim=1), atol=1e-6)
    assert torch.allclose(method.targets2[[2, 6]], 0.3 * F.softmax(3 * x, dim=1), atol=1e-6)
    assert (method.targets1[[0, 1, 3, 4, 5, 7]] == 0).all()
    assert out.relabelled["target"].tolist() == [0, 1] and "net2_target" in out.relabelled
    assert {"elr_reg", "net2_elr_reg"} <= set(out.stats)
    out.loss.backward()
    assert method.net1.fc.weight.grad is not None and method.ema1.fc.weight.grad is None

    # "The optimiser step": net1 moves; the next step averages it into EMA 1 first.
    with torch.no_grad():
        method.net1.fc.weight.copy_(5 * torch.eye(3))
    method.train_step(Batch(x, torch.tensor([0, 1]), torch.tensor([2, 6])), epoch=0)
    d = ema_decay(1, 0.997, 40000, ramp=True)
    assert torch.allclose(method.ema1.fc.weight, (3 * d + 5 * (1 - d)) * torch.eye(3), atol=1e-6)
    assert method.steps_done == 2

    fresh = ELRPlus(build_hparams("elr_plus"), context())
    fresh.load_state_dict(method.state_dict())
    assert fresh.steps_done == 2
    assert torch.equal(fresh.targets1, method.targets1) and torch.equal(fresh.targets2, method.targets2)
    assert torch.equal(fresh.ema1.fc.weight, method.ema1.fc.weight)


def test_the_prediction_averages_the_two_networks():
    method = ELRPlus(build_hparams("elr_plus"), context())
    x = torch.randn(4, 3)
    assert torch.allclose(method.predict(x), 1.5 * x)  # (1x + 2x) / 2
    assert set(method.predict_extra(x)) == {"net1", "net2"}


def test_the_mixup_draws_repeat_per_epoch_and_keep_the_larger_share():
    method = ELRPlus(build_hparams("elr_plus"), context())
    method.epoch_plan(3, None)
    first = [method.draw_mixup(16) for _ in range(5)]
    method.epoch_plan(3, None)
    again = [method.draw_mixup(16) for _ in range(5)]
    for (lam, perm), (lam2, perm2) in zip(first, again):
        assert lam == lam2 and torch.equal(perm, perm2)
        assert 0.5 <= lam <= 1.0 and sorted(perm.tolist()) == list(range(16))


def test_the_defaults_per_setting():
    ten, hundred = ELRPlus(build_hparams("elr_plus"), context()), ELRPlus(build_hparams("elr_plus"), context(100))
    assert (ten.beta, ten.lam, ten.coef_step, ten.weight_labels) == (0.7, 3.0, 0, False)  # config_cifar10.json
    assert (hundred.beta, hundred.lam, hundred.coef_step, hundred.weight_labels) == (0.9, 7.0, 40000, True)
    asym = ELRPlus(build_hparams("elr_plus"), context(noise_kind="asym"))
    assert (asym.beta, asym.lam) == (0.9, 1.0)  # config_cifar10_asym.json


@pytest.mark.parametrize("hp", [{"beta": "1"}, {"mixup_alpha": "0"}, {"ema_alpha": "1"}, {"coef_step": "-1"}])
def test_bad_hyperparameters_are_refused_in_one_line(hp):
    with pytest.raises(BenchError, match="--hp elr_plus"):
        build_hparams("elr_plus", hp)


def test_the_original_recipes():
    c10 = resolve_recipe("original", "cifar10", "elr_plus")
    assert (c10.model, c10.lr, c10.weight_decay, c10.batch_size, c10.epochs, c10.milestones, c10.lr_gamma) == (
        "dividemix_preact_resnet18", 0.02, 5e-4, 128, 200, (150,), 0.1)
    assert c10.augment and c10.val_fraction == 0.1
    c100 = resolve_recipe("original", "cifar100", "elr_plus")
    assert (c100.epochs, c100.milestones) == (250, (200,))
    clothing = resolve_recipe("original", "clothing1m", "elr_plus")
    assert (clothing.model, clothing.lr, clothing.batch_size, clothing.epochs, clothing.milestones) == (
        "resnet50", 0.002, 64, 90, (42,))


def test_the_trial_records_both_networks_targets(tmp_path):
    spec = TrialSpec(dataset="digits", method="elr_plus", noise="sym:0.4", seed=0, protocol="quick", epochs=2)
    run_trial(spec, tmp_path, device="cpu")
    lines = TrialStore(tmp_path).trial(spec).read_metrics()
    assert len(lines) == 2
    for key in ("target_acc", "net2_target_acc", "elr_reg", "net2_elr_reg", "test_acc_net1", "test_acc_net2"):
        assert key in lines[-1], key
