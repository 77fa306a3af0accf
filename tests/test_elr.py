"""ELR: the target update and the regulariser on hand-built inputs, the per-sample targets as
state, the official (beta, lambda) per setting, its `original` recipes, and its diagnostics."""
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
from noisybench.methods.elr import (
    ELR,
    clamped_probabilities,
    elr_loss,
    elr_regulariser,
    official_beta_lambda,
    update_targets,
)
from noisybench.results.store import TrialStore


# ------------------------------------------------------------------------------- target update
def test_the_target_update_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    first = update_targets(torch.zeros(1, 3), probs, beta=0.7)
    assert torch.allclose(first, torch.tensor([[0.15, 0.09, 0.06]]))  # 0.3 * p: no bias correction
    second = update_targets(first, torch.tensor([[0.1, 0.8, 0.1]]), beta=0.7)
    # 0.7 * (0.15, 0.09, 0.06) + 0.3 * (0.1, 0.8, 0.1)
    assert torch.allclose(second, torch.tensor([[0.135, 0.303, 0.072]]))
    assert math.isclose(float(second.sum()), 1 - 0.7**2, rel_tol=1e-6)


def test_the_target_takes_the_clamped_prediction_renormalised():
    # softmax of (20, 0, 0) is (1 - 4e-9, 2e-9, 2e-9); clamped: (1 - 1e-4, 1e-4, 1e-4), sum 1 + 1e-4.
    probs = clamped_probabilities(torch.tensor([[20.0, 0.0, 0.0]]), eps=1e-4)
    assert torch.allclose(probs, torch.tensor([[1 - 1e-4, 1e-4, 1e-4]]))
    target = update_targets(torch.zeros(1, 3), probs, beta=0.0)
    expected = torch.tensor([[1 - 1e-4, 1e-4, 1e-4]]) / (1 + 1e-4)
    assert torch.allclose(target, expected, atol=1e-7)
    assert math.isclose(float(target.sum()), 1.0, rel_tol=1e-6)
    # clamp 0: the paper's plain softmax.
    assert torch.allclose(clamped_probabilities(torch.tensor([[20.0, 0.0, 0.0]]), eps=0.0),
                          F.softmax(torch.tensor([[20.0, 0.0, 0.0]]), dim=1))


def test_the_target_update_does_not_carry_gradient():
    logits = torch.randn(4, 3, requires_grad=True)
    target = update_targets(torch.zeros(4, 3), clamped_probabilities(logits, 1e-4), beta=0.7)
    assert not target.requires_grad


# ------------------------------------------------------------------------------- regulariser
def test_the_regulariser_value_by_hand():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    targets = torch.tensor([[0.6, 0.4], [0.2, 0.7]])
    # <p, t> = 0.5 and 0.25
    assert torch.allclose(elr_regulariser(probs, targets), torch.log(torch.tensor([0.5, 0.75])))


def test_the_regulariser_gradient_pushes_the_prediction_toward_the_target():
    target = torch.tensor([[0.1, 0.7, 0.2]])
    logits = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    probs = clamped_probabilities(logits, 1e-4)
    elr_regulariser(probs, target).sum().backward()
    # d/dz_c log(1 - <p, t>) = -p_c (t_c - <p, t>) / (1 - <p, t>)
    p = probs.detach()
    inner = (p * target).sum()
    assert torch.allclose(logits.grad, -p * (target - inner) / (1 - inner), atol=1e-6)
    assert logits.grad[0, 1] < 0 < logits.grad[0, 0]  # descent raises the target's class, lowers the other
    stepped = clamped_probabilities(logits.detach() - 0.5 * logits.grad, 1e-4)
    assert (stepped * target).sum() > inner
    assert (stepped - target / target.sum()).norm() < (p - target / target.sum()).norm()


def test_a_target_that_disagrees_with_the_noisy_label_holds_the_prediction_back():
    labels = torch.tensor([0, 0])
    logits = torch.tensor([[0.0, 0.7, -1.1], [0.0, 0.7, -1.1]], requires_grad=True)  # p ~ (0.3, 0.6, 0.1)
    agree = torch.tensor([0.9, 0.05, 0.05])  # the target has kept the label's class
    disagree = torch.tensor([0.05, 0.9, 0.05])  # the target has another class: a likely wrong label
    targets = torch.stack([agree, disagree])
    probs = clamped_probabilities(logits, 1e-4)
    loss, _ = elr_loss(logits, labels, probs, targets, lam=3.0)
    loss.backward()
    grad = logits.grad * len(labels)  # per sample, undoing the batch mean
    # Agreeing: CE and regulariser both raise the label's logit (descent: z_0 up).
    assert grad[0, 0] < 0
    # Disagreeing, lambda = 3: the regulariser outweighs CE on the label's logit (descent: z_0 down)
    # and raises the target's class instead -- the label is not memorised.
    assert grad[1, 0] > 0 and grad[1, 1] < 0
    # Plain CE (lambda 0) would raise the wrong label's logit for both.
    logits.grad = None
    elr_loss(logits, labels, clamped_probabilities(logits, 1e-4), targets, lam=0.0)[0].backward()
    assert (logits.grad[:, 0] < 0).all()


def test_the_loss_is_ce_plus_lambda_times_the_mean_regulariser():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0])
    targets = torch.tensor([[0.2, 0.1], [0.1, 0.2]])
    probs = clamped_probabilities(logits, 1e-4)
    loss, reg = elr_loss(logits, labels, probs, targets, lam=3.0)
    expected_reg = torch.log(1 - (probs * targets).sum(1)).mean()
    assert torch.allclose(reg, expected_reg)
    assert torch.allclose(loss, F.cross_entropy(logits, labels) + 3.0 * expected_reg)


# ------------------------------------------------------------------------------- per-sample state
class Fixed(nn.Module):
    """A linear 'network' over 3-feature inputs whose logits are the inputs themselves."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(3))

    def forward(self, x, return_features=False):
        out = self.fc(x)
        return (out, x) if return_features else out


def context(num_train=10, noise_kind="sym", num_classes=3) -> MethodContext:
    return MethodContext(num_classes=num_classes, num_train=num_train, epochs=2, noise_kind=noise_kind,
                         noise_rate=0.4, device=torch.device("cpu"), seed=0, build_network=lambda i: Fixed())


def test_the_targets_persist_by_sample_index_and_survive_a_state_dict_round_trip():
    method = ELR(build_hparams("elr"), context())
    assert (method.beta, method.lam) == (0.7, 3.0)
    x1 = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    out = method.train_step(Batch(x1, torch.tensor([0, 1]), torch.tensor([3, 5])), epoch=0)
    p1 = F.softmax(x1, dim=1).clamp(1e-4, 1 - 1e-4)
    p1 = p1 / p1.sum(1, keepdim=True)
    assert torch.allclose(method.targets[[3, 5]], 0.3 * p1, atol=1e-6)
    untouched = torch.ones(10, dtype=torch.bool)
    untouched[[3, 5]] = False
    assert (method.targets[untouched] == 0).all()
    assert out.relabelled["target"].tolist() == [0, 2]  # scored by the trainer as target_acc
    # Sample 5 again, in another batch and another position: its target goes on from its own.
    x2 = torch.tensor([[0.0, 4.0, 0.0], [0.0, 1.0, 0.0]])
    method.train_step(Batch(x2, torch.tensor([1, 1]), torch.tensor([5, 7])), epoch=0)
    p2 = F.softmax(x2, dim=1).clamp(1e-4, 1 - 1e-4)
    p2 = p2 / p2.sum(1, keepdim=True)
    assert torch.allclose(method.targets[5], 0.7 * 0.3 * p1[1] + 0.3 * p2[0], atol=1e-6)
    assert torch.allclose(method.targets[7], 0.3 * p2[1], atol=1e-6)
    assert torch.allclose(method.targets[3], 0.3 * p1[0], atol=1e-6)

    assert "targets" in method.state_dict()
    fresh = ELR(build_hparams("elr"), context())
    fresh.load_state_dict(method.state_dict())
    assert torch.equal(fresh.targets, method.targets)


def test_the_step_reports_its_diagnostics():
    method = ELR(build_hparams("elr"), context())
    out = method.train_step(Batch(torch.eye(3), torch.tensor([0, 0, 2]), torch.tensor([0, 1, 2])), epoch=0)
    assert out.relabelled["target"].tolist() == [0, 1, 2]
    assert math.isclose(float(out.stats["target_agrees_label"]), 2 / 3, rel_tol=1e-6)
    assert float(out.stats["elr_reg"]) < 0
    # The loss trained on is CE plus lambda (3 on sym) times the regulariser, not CE alone.
    ce = torch.nn.functional.cross_entropy(torch.eye(3), torch.tensor([0, 0, 2]))
    assert torch.allclose(out.loss, ce + 3.0 * out.stats["elr_reg"])


# ------------------------------------------------------------------------------- defaults
def test_the_official_beta_and_lambda_per_setting():
    assert official_beta_lambda(10, "sym") == (0.7, 3.0)  # config_cifar10.json
    assert official_beta_lambda(10, "asym") == (0.9, 1.0)  # config_cifar10_asym.json
    assert official_beta_lambda(10, "pair") == (0.9, 1.0)  # class-dependent, as asym (a rule, not tuned)
    assert official_beta_lambda(100, "sym") == (0.9, 7.0)  # config_cifar100.json
    assert official_beta_lambda(100, "asym") == (0.9, 7.0)
    method = ELR(build_hparams("elr", {"beta": "0.5", "lam": "2"}), context(noise_kind="asym"))
    assert (method.beta, method.lam) == (0.5, 2.0)  # --hp wins over the config's


@pytest.mark.parametrize("hp", [{"beta": "1"}, {"beta": "-0.1"}, {"lam": "-1"}, {"clamp": "0.5"}])
def test_bad_hyperparameters_are_refused_in_one_line(hp):
    with pytest.raises(BenchError, match="--hp elr"):
        build_hparams("elr", hp)


def test_the_original_recipes():
    c10 = resolve_recipe("original", "cifar10", "elr")
    assert (c10.model, c10.optimizer, c10.lr, c10.momentum, c10.weight_decay, c10.batch_size) == (
        "resnet34", "sgd", 0.02, 0.9, 1e-3, 128)
    assert (c10.epochs, c10.schedule, c10.milestones, c10.lr_gamma) == (120, "multistep", (40, 80), 0.01)
    assert c10.augment and c10.val_fraction == 0.1 and c10.mean_std[1] == (0.2023, 0.1994, 0.2010)
    c100 = resolve_recipe("original", "cifar100", "elr")
    assert (c100.epochs, c100.milestones, c100.lr_gamma, c100.model) == (150, (80, 120), 0.01, "resnet34")
    clothing = resolve_recipe("original", "clothing1m", "elr")
    assert (clothing.model, clothing.lr, clothing.batch_size, clothing.epochs, clothing.milestones) == (
        "resnet50", 0.002, 64, 90, (42,))
    assert clothing.imagenet_init and clothing.val_fraction == 0.0
    digits = resolve_recipe("original", "digits", "elr")  # the quick data handling, ELR's optimiser
    assert (digits.model, digits.epochs, digits.optimizer, digits.lr, digits.milestones) == (
        "mlp", 100, "sgd", 0.02, (33, 67))


# ------------------------------------------------------------------------------- trainer
def test_the_trial_records_the_target_accuracy(tmp_path):
    spec = TrialSpec(dataset="digits", method="elr", noise="sym:0.4", seed=0, protocol="quick", epochs=2)
    run_trial(spec, tmp_path, device="cpu")
    lines = TrialStore(tmp_path).trial(spec).read_metrics()
    assert len(lines) == 2
    for key in ("target_acc", "elr_reg", "target_agrees_label"):
        assert key in lines[-1], key
    # The targets are the network's early predictions: more right than the 40%-noisy labels.
    assert lines[-1]["target_acc"] > lines[-1]["target_agrees_label"]
