"""The LEND paper's baselines: Co-teaching, GCE, JoCoR, SIGUA and their shared small-loss machinery.

Every rule is checked on hand-built losses or logits whose right answer is worked out here.
Logits are built as log-probabilities, so softmax gives back the chosen probabilities exactly.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from noisybench.bench.trainer.protocols import resolve_recipe
from noisybench.bench.trainer.optim import lr_and_beta1
from noisybench.core.errors import BenchError
from noisybench.methods import build_method
from noisybench.methods.base import Batch, MethodContext, TrainerView
from noisybench.methods.coteaching import coteaching_losses
from noisybench.methods.gce import lq_loss, lq_threshold, truncated_lq_loss, truncation_weights
from noisybench.methods.jocor import jocor_loss, jocor_sample_losses, kl_per_sample
from noisybench.methods.selection import (
    forget_rate_at,
    forget_rate_schedule,
    num_remembered,
    resolve_forget_rate,
    small_loss_mask,
)
from noisybench.methods.sigua import default_sigua_rate, sigua_sl_loss, sigua_split


def logits_from_probs(rows) -> torch.Tensor:
    return torch.log(torch.tensor(rows, dtype=torch.float64))


def two_class(p_label: list[float]) -> torch.Tensor:
    """Logits of a 2-class batch whose label-0 probability is p (labels are all 0)."""
    return logits_from_probs([[p, 1 - p] for p in p_label])


def context(noise_rate=0.4, noise_kind="sym", epochs=20, num_train=12, num_classes=3) -> MethodContext:
    def build_network(i: int) -> nn.Module:
        torch.manual_seed(100 + i)  # test-only nets; the trainer's seeding is tested elsewhere
        return nn.Sequential(nn.Flatten(), nn.Linear(4, num_classes))

    return MethodContext(num_classes=num_classes, num_train=num_train, epochs=epochs, noise_kind=noise_kind,
                         noise_rate=noise_rate, device=torch.device("cpu"), seed=0, build_network=build_network)


def toy_batch(size=10, num_classes=3) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(size, 4, generator=g), torch.randint(0, num_classes, (size,), generator=g),
                 torch.arange(size))


# --------------------------------------------------------------------------------------
# The shared schedule and selection
# --------------------------------------------------------------------------------------
def test_schedule_is_the_reference_array():
    tau = 0.4
    schedule = forget_rate_schedule(tau, num_gradual=10, exponent=1.0, length=13)
    # linspace(0, 0.4, 10): steps of 0.4/9, then ones * 0.4.
    expected = [tau * i / 9 for i in range(10)] + [tau] * 3
    assert schedule == pytest.approx(expected, abs=1e-15)
    # exponent c: the ramp ends at tau**c, the next entry jumps to tau (kept as the reference has it).
    squared = forget_rate_schedule(tau, num_gradual=10, exponent=2.0, length=12)
    assert squared[9] == pytest.approx(0.16) and squared[10] == pytest.approx(0.4)
    assert squared[1] == pytest.approx(0.16 / 9)


def test_first_trained_epoch_uses_entry_one():
    schedule = forget_rate_schedule(0.4, num_gradual=10, exponent=1.0, length=21)
    assert forget_rate_at(schedule, 0) == pytest.approx(0.4 / 9)  # not 0: entry 0 is never trained
    assert forget_rate_at(schedule, 7) == pytest.approx(0.4 * 8 / 9)
    assert forget_rate_at(schedule, 8) == pytest.approx(0.4)  # entry 9 ends the ramp
    assert forget_rate_at(schedule, 19) == pytest.approx(0.4)
    assert forget_rate_at(schedule, 500) == pytest.approx(0.4)


def test_number_kept_truncates_like_the_reference():
    assert num_remembered(64, 0.4) == 38  # int(38.4)
    assert num_remembered(128, 0.4 / 9) == 122  # int(122.31)
    assert num_remembered(10, 0.0) == 10


def test_small_loss_mask_keeps_the_smallest():
    losses = torch.tensor([0.5, 0.1, 2.0, 0.3, 1.0])
    assert small_loss_mask(losses, 3).tolist() == [1, 1, 0, 1, 0]
    assert small_loss_mask(losses, 0).tolist() == [0, 0, 0, 0, 0]
    # Ties break by position, so a run is reproducible.
    assert small_loss_mask(torch.tensor([1.0, 1.0, 1.0, 0.0]), 2).tolist() == [1, 0, 0, 1]


def test_forget_rate_defaults_to_the_noise_rate_and_asks_when_unknown():
    assert resolve_forget_rate("coteaching", None, 0.45) == 0.45
    assert resolve_forget_rate("coteaching", 0.2, 0.45) == 0.2
    with pytest.raises(BenchError, match=r"--hp coteaching.forget_rate=R"):
        resolve_forget_rate("coteaching", None, None)
    for name in ("coteaching", "jocor", "sigua"):
        with pytest.raises(BenchError, match=rf"--hp {name}.forget_rate=R"):
            build_method(name, {}, context(noise_rate=None))
        build_method(name, {"forget_rate": "0.3"}, context(noise_rate=None))  # an explicit rate is enough


# --------------------------------------------------------------------------------------
# Co-teaching
# --------------------------------------------------------------------------------------
def test_coteaching_cross_update_by_hand():
    labels = torch.zeros(4, dtype=torch.long)
    logits1 = two_class([0.9, 0.2, 0.6, 0.5]).requires_grad_()
    logits2 = two_class([0.3, 0.8, 0.7, 0.95]).requires_grad_()
    loss1, loss2, kept1, kept2 = coteaching_losses(logits1, logits2, labels, num_keep=2)
    assert kept1.tolist() == [1, 0, 1, 0]  # net 1's two smallest CE: p = 0.9, 0.6
    assert kept2.tolist() == [0, 1, 0, 1]  # net 2's: p = 0.95, 0.8
    # Net 1 learns from net 2's choice and vice versa.
    assert loss1.item() == pytest.approx((-math.log(0.2) - math.log(0.5)) / 2)
    assert loss2.item() == pytest.approx((-math.log(0.3) - math.log(0.7)) / 2)
    (grad1,) = torch.autograd.grad(loss1, logits1, retain_graph=True)
    assert grad1[[0, 2]].abs().sum() == 0 and grad1[[1, 3]].abs().sum() > 0
    assert torch.autograd.grad(loss1, logits2, allow_unused=True)[0] is None  # no leak between nets

    quirk1, quirk2, _, _ = coteaching_losses(logits1, logits2, labels, num_keep=2, double_division=True)
    assert quirk1.item() == pytest.approx(loss1.item() / 2) and quirk2.item() == pytest.approx(loss2.item() / 2)


def test_coteaching_method_reports_both_selections_and_the_epoch_rate():
    method = build_method("coteaching", {}, context(noise_rate=0.45))
    out = method.train_step(toy_batch(10), epoch=0)
    rate = 0.45 / 9
    assert out.stats["forget_rate"].item() == pytest.approx(rate)
    assert set(out.selected) == {"", "net2_"}
    assert out.selected[""].sum().item() == num_remembered(10, rate) == 9
    assert method.predict_extra(toy_batch(10).images)["net2"].shape == (10, 3)
    # Different initialisations: the peers must not be copies.
    assert not torch.equal(method.net1[1].weight, method.net2[1].weight)
    late = method.train_step(toy_batch(10), epoch=12)
    assert late.stats["forget_rate"].item() == pytest.approx(0.45)
    assert late.selected[""].sum().item() == 5  # int(0.55 * 10)


# --------------------------------------------------------------------------------------
# JoCoR
# --------------------------------------------------------------------------------------
def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def test_jocor_joint_loss_by_hand():
    p1 = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]]
    p2 = [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.25, 0.25, 0.5]]
    labels = torch.tensor([0, 1, 0])
    lam = 0.9
    expected = [
        (1 - lam) * (-math.log(p1[i][y]) - math.log(p2[i][y])) + lam * (kl(p2[i], p1[i]) + kl(p1[i], p2[i]))
        for i, y in enumerate(labels.tolist())
    ]
    logits1, logits2 = logits_from_probs(p1), logits_from_probs(p2)
    losses = jocor_sample_losses(logits1, logits2, labels, lam)
    assert losses.tolist() == pytest.approx(expected)
    # kl_per_sample(a, b) is the reference's kl_div(log_softmax(a), softmax(b)) = KL(p_b || p_a).
    assert kl_per_sample(logits1, logits2)[1].item() == pytest.approx(kl(p2[1], p1[1]))
    # Keep the 2 smallest joint losses and average them.
    loss, kept = jocor_loss(logits1, logits2, labels, lam, num_keep=2)
    order = np.argsort(expected)
    assert kept.tolist() == [1.0 if i in order[:2] else 0.0 for i in range(3)]
    assert loss.item() == pytest.approx((expected[order[0]] + expected[order[1]]) / 2)


def test_jocor_co_regularisation_reaches_both_nets():
    labels = torch.tensor([0, 1])
    logits1 = logits_from_probs([[0.7, 0.3], [0.4, 0.6]]).requires_grad_()
    logits2 = logits_from_probs([[0.2, 0.8], [0.5, 0.5]]).requires_grad_()
    loss, _ = jocor_loss(logits1, logits2, labels, co_lambda=1.0, num_keep=2)  # pure symmetric KL
    g1, g2 = torch.autograd.grad(loss, (logits1, logits2))
    # Nothing detached: the gradients equal those of the written-out formula, differentiated
    # through both distributions of both KL terms (detaching either target would change them).
    a, b = logits1.softmax(1), logits2.softmax(1)
    by_hand = ((b * (b.log() - a.log())).sum(1) + (a * (a.log() - b.log())).sum(1)).mean()
    h1, h2 = torch.autograd.grad(by_hand, (logits1, logits2))
    assert torch.allclose(g1, h1) and torch.allclose(g2, h2)
    assert g1.abs().sum() > 0 and g2.abs().sum() > 0
    # Identical predictions: no disagreement, no co-regularisation gradient.
    same, _ = jocor_loss(logits1, logits1.detach().clone().requires_grad_(), labels, co_lambda=1.0, num_keep=2)
    assert same.item() == pytest.approx(0.0, abs=1e-12)


def test_jocor_kl_is_kl_div_bit_for_bit_and_finite_where_a_probability_underflows():
    """JoCoR's NaN on Fashion-MNIST (pair:0.45, epoch 26): torch's kl_div gives a finite loss and
    NaN gradients once softmax(q) holds an exact 0 (logits > ~104 apart in float32)."""
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    for scale, underflows in ((1.0, False), (60.0, True)):
        p = (torch.randn(64, 10, generator=generator) * scale).requires_grad_()
        q = (torch.randn(64, 10, generator=generator) * scale).requires_grad_()
        reference = F.kl_div(F.log_softmax(p, 1), F.softmax(q, 1), reduction="none").sum(1)
        ref_p, ref_q = torch.autograd.grad(reference.sum(), (p, q))
        ours = kl_per_sample(p, q)
        our_p, our_q = torch.autograd.grad(ours.sum(), (p, q))
        assert torch.equal(ours, reference)  # the same loss, bit for bit
        assert (F.softmax(q, 1) == 0).any().item() == underflows and ref_q.isnan().any().item() == underflows
        assert torch.isfinite(our_p).all() and torch.isfinite(our_q).all()
        finite = ~ref_q.isnan().any(dim=1)  # rows torch differentiated: the same gradients, bit for bit
        assert torch.equal(our_q[finite], ref_q[finite]) and torch.equal(our_p, ref_p)
    # The sample where it began: confident, disagreeing nets.
    logits1 = torch.tensor([[120.0, 0.0, -5.0]], requires_grad=True)
    logits2 = torch.tensor([[0.0, 130.0, 1.0]], requires_grad=True)
    loss = jocor_sample_losses(logits1, logits2, torch.tensor([0]), 0.9).sum()
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(loss, (logits1, logits2)))


def test_jocor_halves_the_forget_rate_under_asym_noise_only():
    assert build_method("jocor", {}, context(noise_rate=0.4, noise_kind="asym")).forget_rate == pytest.approx(0.2)
    assert build_method("jocor", {}, context(noise_rate=0.4, noise_kind="sym")).forget_rate == pytest.approx(0.4)
    assert build_method("jocor", {}, context(noise_rate=0.45, noise_kind="pair")).forget_rate == pytest.approx(0.45)
    explicit = build_method("jocor", {"forget_rate": "0.3"}, context(noise_rate=0.4, noise_kind="asym"))
    assert explicit.forget_rate == pytest.approx(0.3)
    assert build_method("jocor", {}, context()).hparams.co_lambda == 0.9


# --------------------------------------------------------------------------------------
# SIGUA
# --------------------------------------------------------------------------------------
LOSSES = [0.1, 2.0, 0.5, 1.5, 3.0, 0.2, 1.0, 2.5, 0.3, 4.0]
# ascending: 0.1(0) 0.2(5) 0.3(8) 0.5(2) 1.0(6) 1.5(3) | 2.0(1) 2.5(7) 3.0(4) 4.0(9)


def mask_of(indices, size=10):
    return [1.0 if i in indices else 0.0 for i in range(size)]


def test_sigua_split_and_loss_by_hand():
    losses = torch.tensor(LOSSES, dtype=torch.float64, requires_grad=True)
    gamma = 0.01
    loss, kept, ascent = sigua_sl_loss(losses, num_keep=6, sigua_rate=0.5, sigua_scale=gamma)
    assert kept.tolist() == mask_of({0, 5, 8, 2, 6, 3})
    assert ascent.tolist() == mask_of({1, 7})  # int(4 * 0.5) = 2 lowest of the discarded
    assert loss.item() == pytest.approx((0.1 + 0.2 + 0.3 + 0.5 + 1.0 + 1.5) / 6 - gamma * (2.0 + 2.5) / 2)
    (grad,) = torch.autograd.grad(loss, losses)
    expected = [1 / 6 if k else (-gamma / 2 if a else 0.0) for k, a in zip(kept.tolist(), ascent.tolist())]
    assert grad.tolist() == pytest.approx(expected)


def test_sigua_edge_counts_follow_the_reference():
    losses = torch.tensor(LOSSES)
    # int(4 * 0.1) = 0: the reference still ascends on one sample (loss_big[:1]).
    _, ascent, count = sigua_split(losses, num_keep=6, sigua_rate=0.1)
    assert count == 1 and ascent.tolist() == mask_of({1})
    # Nothing discarded: no ascent term (the reference would divide 0 by 0).
    loss, kept, ascent = sigua_sl_loss(losses, num_keep=10, sigua_rate=0.3, sigua_scale=0.01)
    assert ascent.sum() == 0 and kept.sum() == 10 and loss.item() == pytest.approx(sum(LOSSES) / 10)


def test_sigua_ascends_on_the_ascent_samples_through_the_logits():
    # 3 classes, label 0; the CE order is sample 0 < 1 < 2 < 3.
    logits = logits_from_probs([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]])
    logits.requires_grad_()
    labels = torch.zeros(4, dtype=torch.long)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    loss, kept, ascent = sigua_sl_loss(ce, num_keep=2, sigua_rate=0.5, sigua_scale=0.01)
    assert kept.tolist() == [1, 1, 0, 0] and ascent.tolist() == [0, 0, 1, 0]
    (grad,) = torch.autograd.grad(loss, logits)
    # A descent step (−grad) raises the label logit of the kept samples and LOWERS it on the ascent one.
    assert grad[0, 0] < 0 and grad[1, 0] < 0
    assert grad[2, 0] > 0
    assert grad[3].abs().sum() == 0  # discarded and not ascended: ignored


def test_sigua_rate_rule():
    assert default_sigua_rate(0.2) == 0.4  # sym-20 script
    assert default_sigua_rate(0.5) == 0.3  # sym-50 script
    assert default_sigua_rate(0.45) == 0.3  # pair-45 script
    assert default_sigua_rate(0.4) == 0.3 and default_sigua_rate(0.3) == 0.4  # nearer setting
    assert build_method("sigua", {}, context(noise_rate=0.2)).sigua_rate == 0.4
    assert build_method("sigua", {"sigua_rate": "0.7"}, context(noise_rate=0.2)).sigua_rate == 0.7


# --------------------------------------------------------------------------------------
# GCE
# --------------------------------------------------------------------------------------
def test_lq_against_the_formula_and_its_limits():
    probs = [0.25, 0.6, 0.9]
    logits = logits_from_probs([[p, 1 - p] for p in probs])
    labels = torch.zeros(3, dtype=torch.long)
    q = 0.7
    assert lq_loss(logits, labels, q).tolist() == pytest.approx([(1 - p**q) / q for p in probs])
    assert lq_loss(logits, labels, 1.0).tolist() == pytest.approx([1 - p for p in probs])  # MAE-like
    ce = [-math.log(p) for p in probs]
    assert lq_loss(logits, labels, 1e-7).tolist() == pytest.approx(ce, rel=1e-5)  # q -> 0: CE
    # Bounded by 1/q even where p_y underflows.
    far = torch.tensor([[0.0, 1e4]], dtype=torch.float64)
    assert lq_loss(far, torch.zeros(1, dtype=torch.long), q).item() == pytest.approx(1 / q)


def test_truncated_lq_and_weights_by_hand():
    q, k = 0.7, 0.5
    probs = [0.8, 0.51, 0.49, 0.1]
    logits = two_class(probs)
    labels = torch.zeros(4, dtype=torch.long)
    weights = truncation_weights(logits, labels, q, k)
    assert weights.tolist() == [1, 1, 0, 0]  # p_y > k
    lqk = (1 - k**q) / q
    assert lq_threshold(q, k) == pytest.approx(lqk)
    expected = sum(w * ((1 - p**q) / q - lqk) for w, p in zip([1, 1, 0, 0], probs)) / 4  # mean over the batch
    assert truncated_lq_loss(logits, labels, weights, q, k).item() == pytest.approx(expected)


class FakeView(TrainerView):
    def __init__(self, logits, labels):
        self.logits, self.labels, self.calls = logits, labels, 0

    def predict_train(self, augment=False):
        self.calls += 1
        return self.logits

    @property
    def noisy_labels(self):
        return self.labels


def test_gce_prunes_every_10_epochs_from_start_prune_with_the_current_model():
    probs = [0.9, 0.3, 0.6, 0.2]
    view = FakeView(two_class(probs).float(), torch.zeros(4, dtype=torch.long))
    method = build_method("gce", {"truncated": "true", "start_prune": "20"}, context(num_train=4, num_classes=2))
    pruning_epochs = [e for e in range(60) if method.prunes_at(e)]
    assert pruning_epochs == [19, 29, 39, 49, 59]  # (epoch+1) >= 20 and (epoch+1) % 10 == 0
    method.epoch_plan(18, view)
    assert view.calls == 0 and method.prune_weight.tolist() == [1, 1, 1, 1]
    method.epoch_plan(19, view)
    assert view.calls == 1 and method.prune_weight.tolist() == [1, 0, 1, 0]
    assert "prune_weight" in method.state_dict()  # a resumed trial keeps its pruning

    batch = Batch(torch.randn(3, 4), torch.tensor([0, 1, 0]), torch.tensor([3, 0, 2]))
    out = method.train_step(batch, 19)
    assert out.selected[""].tolist() == [0, 1, 1]  # the weights of samples 3, 0, 2
    # Plain GCE (the default) never prunes and has no selection.
    plain = build_method("gce", {"start_prune": "20"}, context(num_train=4, num_classes=2))
    plain.epoch_plan(19, view)
    assert view.calls == 1 and plain.train_step(batch, 19).selected == {}
    assert build_method("gce", {}, context(num_classes=100)).start_prune == 80
    assert build_method("gce", {}, context(num_classes=10)).start_prune == 40


def test_bad_hyperparameters_are_one_line_errors():
    for name, hp in [("gce", {"q": "0"}), ("gce", {"k": "1.5"}), ("jocor", {"co_lambda": "2"}),
                     ("sigua", {"sigua_scale": "-1"}), ("coteaching", {"forget_rate": "1.0"}),
                     ("coteaching", {"num_gradual": "0"})]:
        with pytest.raises(BenchError, match=rf"--hp {name}\."):
            build_method(name, hp, context())


# --------------------------------------------------------------------------------------
# The `original` protocol: Co-teaching's learning-rate and beta1 plans
# --------------------------------------------------------------------------------------
def reference_plans(lr, n_epoch, decay_start):
    """bhanML/Co-teaching main.py's alpha_plan and beta1_plan, rewritten from its loop."""
    alpha = [lr] * n_epoch
    beta1 = [0.9] * n_epoch
    for i in range(decay_start, n_epoch):
        alpha[i] = float(n_epoch - i) / (n_epoch - decay_start) * lr
        beta1[i] = 0.1
    return alpha, beta1


@pytest.mark.parametrize("method", ["coteaching", "jocor", "sigua"])
def test_original_recipe_reproduces_the_reference_plans(method):
    recipe = resolve_recipe("original", "cifar10", method)
    assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.augment) == ("adam", 1e-3, 128, False)
    assert recipe.epochs == 199 and recipe.decay_start == 80
    alpha, beta1 = reference_plans(1e-3, 200, 80)
    # Trained epoch e is the reference's epoch e + 1 (its epoch 0 only evaluates).
    for e in range(recipe.epochs):
        lr, b1 = lr_and_beta1(recipe, e)
        assert lr == pytest.approx(alpha[e + 1]) and b1 == beta1[e + 1]
    assert lr_and_beta1(recipe, recipe.epochs - 1)[0] == pytest.approx(1e-3 / 120)  # never a 0-lr epoch


def test_original_recipe_on_digits_scales_the_schedule():
    recipe = resolve_recipe("original", "digits", "coteaching")
    quick = resolve_recipe("quick", "digits", "coteaching")
    assert (recipe.model, recipe.epochs, recipe.batch_size, recipe.normalize) == (
        quick.model, quick.epochs, quick.batch_size, quick.normalize)
    assert (recipe.optimizer, recipe.lr, recipe.schedule, recipe.decay_start) == ("adam", 1e-3, "coteaching", 40)
    alpha, _ = reference_plans(1e-3, 101, 40)
    assert [lr_and_beta1(recipe, e)[0] for e in range(100)] == pytest.approx(alpha[1:])
    gce = resolve_recipe("original", "digits", "gce")
    assert (gce.optimizer, gce.lr, gce.schedule, gce.milestones) == ("sgd", 0.01, "multistep", (33, 67))
    gce100 = resolve_recipe("original", "cifar100", "gce")
    assert (gce100.epochs, gce100.milestones, gce100.weight_decay) == (150, (80, 120), 1e-4)
    assert dataclasses.replace(resolve_recipe("original", "cifar10", "gce"), epochs=120).milestones == (40, 80)
