"""DivideMix (methods/dividemix_rules.py, methods/dividemix.py): each rule on hand-built inputs whose
answer can be worked out by hand, the per-noise defaults, and the method through the trainer's epoch plan."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisybench.methods import build_hparams, get_method
from noisybench.methods.base import TrialFacts
from noisybench.methods import dividemix_rules as rules
from noisybench.methods.dividemix import table7_entry, tabled_rate


# --- co-divide ------------------------------------------------------------------------------
def test_losses_are_min_max_normalised():
    out = rules.normalise_losses(torch.tensor([2.0, 4.0, 3.0, 6.0]))
    assert torch.allclose(out, torch.tensor([0.0, 0.5, 0.25, 1.0]))
    assert torch.equal(rules.normalise_losses(torch.full((3,), 7.0)), torch.zeros(3))  # no 0/0


def test_gmm_gives_the_low_loss_mode_the_high_clean_probability():
    g = torch.Generator().manual_seed(0)
    clean = 0.1 + 0.03 * torch.randn(700, generator=g)
    noisy = 0.8 + 0.05 * torch.randn(300, generator=g)
    losses = rules.normalise_losses(torch.cat([clean, noisy]))
    prob = rules.gmm_clean_probability(losses, random_state=0)
    assert prob.shape == (1000,) and prob.dtype == torch.float32
    labelled = prob > 0.5
    assert labelled[:700].all() and not labelled[700:].any()
    # The component with the smaller mean is "clean" whichever order EM found the components in.
    flipped = rules.gmm_clean_probability(1 - losses, random_state=0)
    assert (flipped[700:] > 0.5).all() and (flipped[:700] < 0.5).all()
    # Seeded: the same random_state gives the same posterior.
    assert torch.equal(prob, rules.gmm_clean_probability(losses, random_state=0))


def test_gmm_uses_the_official_settings(monkeypatch):
    import sklearn.mixture

    seen = {}
    real = sklearn.mixture.GaussianMixture

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(sklearn.mixture, "GaussianMixture", spy)
    rules.gmm_clean_probability(torch.tensor([0.0, 0.1, 0.9, 1.0]), random_state=7)
    assert seen == {"n_components": 2, "max_iter": 10, "tol": 1e-2, "reg_covar": 5e-4, "random_state": 7}


def test_loss_history_averages_the_last_window_rows():
    history = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    assert torch.equal(rules.averaged_history(history, count=3, window=2), torch.tensor([4.0, 3.0]))
    assert torch.equal(rules.averaged_history(history, count=2, window=5), torch.tensor([2.0, 1.0]))
    assert torch.equal(rules.averaged_history(history, count=3, window=1), torch.tensor([5.0, 4.0]))


# --- co-refinement, co-guessing -------------------------------------------------------------------
def test_sharpening_by_hand():
    # T = 0.5 squares: (0.6, 0.4) -> (0.36, 0.16) / 0.52.
    out = rules.sharpen(torch.tensor([[0.6, 0.4]]), 0.5)
    assert torch.allclose(out, torch.tensor([[0.36 / 0.52, 0.16 / 0.52]]))


def test_co_refinement_by_hand():
    # y = (1, 0), w = 0.5, the two views predict (0.2, 0.8) and (0.4, 0.6): mean (0.3, 0.7);
    # 0.5 y + 0.5 mean = (0.65, 0.35); squared (0.4225, 0.1225), sum 0.545.
    y = torch.tensor([[1.0, 0.0]])
    out = rules.co_refine(y, torch.tensor([0.5]), torch.tensor([[0.2, 0.8]]), torch.tensor([[0.4, 0.6]]), 0.5)
    assert torch.allclose(out, torch.tensor([[0.4225 / 0.545, 0.1225 / 0.545]]))
    # w = 1 keeps the (sharpened) label; w = 0 takes the sharpened mean prediction.
    assert torch.allclose(rules.co_refine(y, torch.tensor([1.0]), y.flip(1), y.flip(1), 0.5), y)
    p = torch.tensor([[0.3, 0.7]])
    assert torch.allclose(rules.co_refine(y, torch.tensor([0.0]), p, p, 0.5), rules.sharpen(p, 0.5))


def test_co_guessing_by_hand():
    # Four softmaxes (two nets x two views) average to (0.5, 0.5) -> sharpened stays (0.5, 0.5);
    # (0.9, 0.1), (0.7, 0.3), (0.8, 0.2), (0.6, 0.4) average to (0.75, 0.25) -> (0.9, 0.1).
    probs = [torch.tensor([[0.9, 0.1]]), torch.tensor([[0.7, 0.3]]), torch.tensor([[0.8, 0.2]]),
             torch.tensor([[0.6, 0.4]])]
    assert torch.allclose(rules.co_guess(probs, 0.5), torch.tensor([[0.9, 0.1]]))
    assert torch.allclose(rules.co_guess([torch.tensor([[0.9, 0.1]]), torch.tensor([[0.1, 0.9]])], 0.5),
                          torch.tensor([[0.5, 0.5]]))


# --- MixMatch -------------------------------------------------------------------------------------
def test_mix_coefficient_is_beta_folded_above_a_half_and_seeded():
    draws = [rules.mix_coefficient(4.0, np.random.default_rng(s)) for s in range(200)]
    assert all(0.5 <= d <= 1.0 for d in draws)
    raw = np.random.default_rng(3).beta(4.0, 4.0)
    assert rules.mix_coefficient(4.0, np.random.default_rng(3)) == max(raw, 1 - raw)


def test_mixmatch_mixes_inputs_and_targets_with_the_permuted_partner():
    inputs = torch.tensor([[0.0], [10.0], [20.0], [30.0]])
    targets = torch.eye(4)
    perm = torch.tensor([1, 0, 3, 2])
    mixed_in, mixed_t = rules.mixmatch(inputs, targets, 0.75, perm)
    assert torch.allclose(mixed_in, torch.tensor([[2.5], [7.5], [22.5], [27.5]]))
    assert torch.allclose(mixed_t[0], torch.tensor([0.75, 0.25, 0.0, 0.0]))
    # Clothing1M / WebVision: only the first (labelled) rows are mixed, with partners from all rows.
    part_in, part_t = rules.mixmatch(inputs, targets, 0.75, torch.tensor([2, 3, 0, 1]), num_mixed=2)
    assert torch.allclose(part_in, torch.tensor([[5.0], [15.0]])) and part_t.shape == (2, 4)


def test_semi_supervised_losses_by_hand():
    # Logits 0 -> softmax (0.5, 0.5).  Lx = -sum t log 0.5 = log 2 for any target summing to 1;
    # Lu = mean((0.5 - (1, 0))^2) = 0.25.
    zeros = torch.zeros(3, 2)
    lx, lu = rules.semi_supervised_losses(zeros, torch.tensor([[1.0, 0.0]] * 3), zeros[:2], torch.tensor([[1.0, 0.0]] * 2))
    assert math.isclose(float(lx), math.log(2), rel_tol=1e-6) and math.isclose(float(lu), 0.25, rel_tol=1e-6)
    _, no_u = rules.semi_supervised_losses(zeros, torch.tensor([[1.0, 0.0]] * 3), zeros[:0], zeros[:0])
    assert float(no_u) == 0.0


@pytest.mark.parametrize("current, expected", [(9.0, 0.0), (10.0, 0.0), (14.0, 25 * 4 / 16), (26.0, 25.0), (40.0, 25.0)])
def test_unlabelled_weight_ramps_linearly_over_16_epochs_after_warm_up(current, expected):
    assert math.isclose(rules.unlabelled_weight(current, 10, 25.0), expected)


def test_prior_penalty_and_negative_entropy_by_hand():
    # Uniform predictions: KL(prior || mean) = 0 and negative entropy = -log C.
    assert abs(float(rules.uniform_prior_penalty(torch.zeros(4, 5)))) < 1e-6
    assert math.isclose(float(rules.negative_entropy(torch.zeros(4, 5))), -math.log(5), rel_tol=1e-6)
    # Every sample predicting class 0 with p = 0.7 of 2 classes: 0.5 log(0.5/0.7) + 0.5 log(0.5/0.3).
    logits = torch.log(torch.tensor([[0.7, 0.3]] * 3))
    expected = 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)
    assert math.isclose(float(rules.uniform_prior_penalty(logits)), expected, rel_tol=1e-5)
    assert math.isclose(float(rules.negative_entropy(logits)), 0.7 * math.log(0.7) + 0.3 * math.log(0.3), rel_tol=1e-5)


def test_evaluation_adds_both_networks_outputs():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert torch.equal(rules.ensemble_logits(a, b), torch.tensor([[1.5, 1.0]]))
    assert rules.ensemble_logits(a, b).argmax(1).item() == (a + b).argmax(1).item()


# --- defaults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, kind, rate, expected", [
    ("cifar10", "sym", 0.2, (0.2, 0.0, 0.5)), ("cifar10", "sym", 0.5, (0.5, 25.0, 0.5)),
    ("cifar10", "sym", 0.8, (0.8, 25.0, 0.5)), ("cifar10", "sym", 0.9, (0.9, 50.0, 0.6)),
    ("cifar10", "asym", 0.4, (0.4, 0.0, 0.5)), ("cifar10", "pair", 0.35, (0.4, 0.0, 0.5)),
    ("cifar100", "sym", 0.2, (0.2, 25.0, 0.5)), ("cifar100", "sym", 0.5, (0.5, 150.0, 0.5)),
    ("cifar100", "sym", 0.9, (0.9, 150.0, 0.6)), ("cifar10", "sym", 0.4, (0.5, 25.0, 0.5)),
    ("cifar100", "asym", 0.4, None), ("digits", "sym", 0.4, None),
])
def test_table7(dataset, kind, rate, expected):
    assert table7_entry(dataset, kind, rate) == expected


def test_tabled_rate_rounds_up_to_the_next_noise_level():
    assert [tabled_rate(r, (0.2, 0.5, 0.8, 0.9)) for r in (0.1, 0.2, 0.35, 0.6, 0.85, 0.95)] == [0.2, 0.2, 0.5, 0.8, 0.9, 0.9]


def resolved(hparams, dataset, protocol, kind, rate):
    resolution = get_method("dividemix").resolve(hparams, TrialFacts(dataset, protocol, kind, rate, 10, 200))
    return resolution.hparams, resolution.sources


def test_resolve_fills_per_dataset_and_noise_and_never_over_an_override():
    hp, sources = resolved(build_hparams("dividemix"), "cifar100", "original", "sym", 0.9)
    assert (hp.lambda_u, hp.p_threshold, hp.warm_up, hp.loss_window, hp.warmup_penalty) == (150.0, 0.6, 30, 5, False)
    assert "Table 7" in sources["lambda_u"] and set(sources) == {"lambda_u", "p_threshold", "warm_up", "loss_window",
                                                                  "warmup_penalty"}
    hp, _ = resolved(build_hparams("dividemix"), "cifar10", "lend-paper", "asym", 0.4)
    assert (hp.lambda_u, hp.warm_up, hp.loss_window, hp.warmup_penalty) == (0.0, 10, 1, True)
    given = build_hparams("dividemix", {"lambda_u": "25", "warm_up": "3"})
    hp, sources = resolved(given, "cifar10", "original", "sym", 0.2)
    assert (hp.lambda_u, hp.warm_up) == (25.0, 3) and "lambda_u" not in sources
    hp, _ = resolved(build_hparams("dividemix"), "mnist", "quick", "inst", 0.3)
    assert (hp.lambda_u, hp.p_threshold, hp.warm_up, hp.warmup_penalty) == (25.0, 0.5, 10, True)


def test_the_loss_window_follows_train_cifar_py_r_equals_0_9_for_any_noise_mode():
    # Train_cifar.py: `if args.r==0.9` averages five epochs' losses -- the rate alone decides, so asym:0.9
    # takes 5 too, and an untabled rate near it (sym:0.85) takes 1 (it is not read at the next tabled rate).
    windows = {(kind, rate): resolved(build_hparams("dividemix"), "cifar10", "quick", kind, rate)[0].loss_window
               for kind, rate in (("sym", 0.9), ("asym", 0.9), ("pair", 0.9), ("sym", 0.85), ("sym", 0.8), ("asym", 0.4))}
    assert windows == {("sym", 0.9): 5, ("asym", 0.9): 5, ("pair", 0.9): 5, ("sym", 0.85): 1, ("sym", 0.8): 1,
                       ("asym", 0.4): 1}


def test_original_recipes():
    from noisybench.bench.trainer.protocols import resolve_recipe

    c10 = resolve_recipe("original", "cifar10", "dividemix")
    assert (c10.model, c10.optimizer, c10.lr, c10.momentum, c10.weight_decay, c10.batch_size) == (
        "dividemix_preact_resnet18", "sgd", 0.02, 0.9, 5e-4, 64)
    assert (c10.epochs, c10.schedule, c10.milestones, c10.augment) == (301, "multistep", (150,), True)
    assert c10.mean_std == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert resolve_recipe("original", "cifar100", "dividemix").mean_std == ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))
    assert resolve_recipe("original", "clothing1m", "dividemix") == resolve_recipe("dividemix-paper", "clothing1m", "standard")
    digits = resolve_recipe("original", "digits", "dividemix")
    assert (digits.model, digits.epochs, digits.optimizer, digits.lr, digits.milestones) == ("mlp", 100, "sgd", 0.02, (50,))


def test_bad_hparams_are_one_line_errors():
    from noisybench.core.errors import BenchError

    for key, value in (("p_threshold", "1.5"), ("alpha", "0"), ("loss_window", "0"), ("lambda_u", "-1")):
        with pytest.raises(BenchError, match="dividemix"):
            build_hparams("dividemix", {key: value})


def test_warm_up_loss_has_the_penalty_only_when_asked():
    from noisybench.methods.dividemix import DivideMix

    class Stub:
        hparams = build_hparams("dividemix", {"warmup_penalty": "true"})

    net = torch.nn.Linear(3, 4)
    batch = type("B", (), {"images": torch.randn(5, 3), "labels": torch.tensor([0, 1, 2, 3, 0])})()
    with_penalty = DivideMix._warm_up_loss(Stub, net, batch)
    logits = net(batch.images)
    assert torch.allclose(with_penalty, F.cross_entropy(logits, batch.labels) + rules.negative_entropy(logits))
    Stub.hparams = build_hparams("dividemix", {"warmup_penalty": "false"})
    assert torch.allclose(DivideMix._warm_up_loss(Stub, net, batch), F.cross_entropy(logits, batch.labels))


# --- through the trainer's epoch plan -----------------------------------------------------------------
def dividemix_trainer(epochs: int = 4, **hp):
    from noisybench.bench.trainer.loop import Trainer
    from noisybench.bench.trainer.setup import setup_trial
    from noisybench.core.spec import TrialSpec

    hparams = tuple(sorted({"warm_up": "1", **hp}.items()))
    spec = TrialSpec(dataset="digits", method="dividemix", noise="sym:0.4", seed=0, protocol="quick",
                     epochs=epochs, hparams=hparams)
    return Trainer(setup_trial(spec, torch.device("cpu")))


def without_seconds(lines):
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def test_warm_up_then_co_divided_passes_each_stepping_its_own_network(one_cpu_thread):
    trainer = dividemix_trainer()
    method = trainer.method
    assert len(trainer.optimizers) == 2
    warm = method.epoch_plan(0, trainer.view).passes
    assert [(p.net, p.subset, p.companion, p.batch_size) for p in warm] == [(0, None, None, 128), (1, None, None, 128)]
    lines = trainer.run()
    assert "loss_x" not in lines[0] and "net1_label_precision" not in lines[0]  # epoch 1: the warm-up
    later = lines[-1]
    for key in ("loss_x", "loss_u", "net1_label_precision", "net2_label_recall", "test_acc_net1", "test_acc_net2"):
        assert key in later and math.isfinite(later[key]), key
    assert later["net1_label_precision"] > 0.9  # the GMM split is mostly clean on digits sym:0.4
    # The passes of the last epoch, after the warm-up: net k on its PEER's division, the rest its companion.
    for k, p in enumerate(trainer.plan.passes):
        peer = method.clean_prob[1 - k] > method.hparams.p_threshold
        assert p.net == k and p.batch_size is None
        assert torch.equal(p.subset, peer) and torch.equal(p.companion, ~peer)


def test_a_pass_moves_only_its_own_network(one_cpu_thread):
    trainer = dividemix_trainer(epochs=3)
    method = trainer.method
    for epoch in (0, 1):  # the warm-up, then a co-divided epoch: the next is two co-divided passes
        trainer.train_epoch(epoch)
    net1_before = [p.detach().clone() for p in method.net1.parameters()]
    net2_before = [p.detach().clone() for p in method.net2.parameters()]
    method.net2.zero_grad(set_to_none=True)
    batches, step = [], method.train_step
    method.train_step = lambda batch, epoch: batches.append(batch) or step(batch, epoch)
    trainer.train_epoch(2, max_steps=3)  # the first three steps of pass 1: net 1 on net 2's division
    assert [b.net for b in batches] == [0, 0, 0]
    for batch in batches:
        assert batch.companion is not None and len(batch.companion) > 0
        assert not method.labelled(1)[batch.companion.index].any()  # unlabelled by net 2
        assert method.labelled(1)[batch.index].all()  # labelled by net 2
    # Pass 1 trains net 1 alone: net 2 only guesses, without a gradient, and its optimiser does not step.
    assert all(p.grad is None for p in method.net2.parameters())
    assert all(torch.equal(a, b) for a, b in zip(net2_before, method.net2.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(net1_before, method.net1.parameters()))


def test_resumed_from_a_checkpoint_it_trains_as_without_one(one_cpu_thread):
    whole = dividemix_trainer(epochs=4)
    uninterrupted = without_seconds(whole.run())
    first = dividemix_trainer(epochs=4)
    first.max_epochs = 2
    head = without_seconds(first.run())
    state = first.state_dict(2)
    assert len(state["optimizers"]) == 2 and "optimizer" not in state
    resumed = dividemix_trainer(epochs=4)
    assert resumed.load_state_dict(state) == 2
    assert head + without_seconds(resumed.run(2)) == uninterrupted


def test_spec_json_records_the_filled_hparams_and_their_sources(one_cpu_thread):
    from noisybench.bench.trainer.records import spec_record

    record = spec_record(dividemix_trainer(epochs=1).setup)
    assert record["hparams"]["lambda_u"] == 25.0 and record["hparams"]["warm_up"] == 1
    assert "warm_up" not in record["hparams_filled"]  # given with --hp
    assert record["hparams_filled"]["lambda_u"] == "Train_cifar.py --lambda_u"
