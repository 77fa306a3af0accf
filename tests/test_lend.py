"""LEND: the dilution rule on hand-built embeddings, its options, and its wiring to the trainer."""
from __future__ import annotations

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
from noisybench.methods.lend import LEND, dilute, sample_weights, temporal_input, temporal_output
from noisybench.results.store import TrialStore


def two_clusters(per_cluster: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two tight clusters of non-negative features along different axes, labelled 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0]])
    features = (centres.repeat_interleave(per_cluster, 0) + 0.2 * torch.randn(2 * per_cluster, 4, generator=g)).abs()
    labels = torch.arange(2).repeat_interleave(per_cluster)
    return features, labels


def official_prop_label(embs: torch.Tensor, cur: torch.Tensor, k: int, gamma: float, alpha: float) -> torch.Tensor:
    """The official prop_label's steps spelled out in float64: per-row loops, the /B, an explicit inverse."""
    embs, cur = embs.double(), cur.double()
    size = embs.shape[0]
    sq = (embs**2).sum(1, keepdim=True)
    nearest = (sq + sq.T - 2 * embs @ embs.T).topk(k, largest=False).indices
    affinity = ((embs @ embs.T) / size).clamp(min=0) ** gamma
    affinity = affinity * (1 - torch.eye(size, dtype=torch.float64))
    mask = torch.zeros(size, size, dtype=torch.float64)
    for row in range(size):
        mask[row, nearest[row]] = 1
    affinity = affinity * mask
    w = affinity @ affinity.T
    d = (1 / w.sum(1, keepdim=True).sqrt()) * torch.eye(size, dtype=torch.float64)
    w = d @ w @ d
    z = torch.linalg.inv(torch.eye(size, dtype=torch.float64) - alpha * w) @ cur
    if torch.isnan(z).any():
        z = cur
    return z.softmax(1)


def random_case(size=24, dim=6, classes=4, seed=1, signed=False):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(size, dim, generator=g)
    features = features if signed else features.abs()
    labels = torch.randint(0, classes, (size,), generator=g)
    return features, F.one_hot(labels, classes).float()


# -------------------------------------------------------------------------------------- dilute()
def test_two_clusters_with_planted_mislabels_are_corrected():
    features, clean = two_clusters()
    noisy = clean.clone()
    noisy[[2, 7]] = 1  # two samples of cluster 0 labelled 1
    noisy[[13]] = 0  # one sample of cluster 1 labelled 0
    out = dilute(features, F.one_hot(noisy, 2).float())
    assert torch.equal(out.labels.argmax(1), clean)
    assert torch.allclose(out.labels.sum(1), torch.ones(20))
    weights = sample_weights(out.labels, noisy, "soft")
    planted = torch.zeros(20, dtype=torch.bool)
    planted[[2, 7, 13]] = True
    assert weights[planted].max() < 0.01 and weights[~planted].min() > 0.99
    assert out.fell_back.item() == 0.0


@pytest.mark.parametrize("signed", [False, True])
def test_matches_the_official_steps(signed):
    features, given = random_case(signed=signed)
    ours = dilute(features, given, k=5, gamma=3.0, alpha=0.9).labels
    assert torch.allclose(ours.double(), official_prop_label(features, given, 5, 3.0, 0.9), atol=1e-5)


def test_a_positive_scalar_on_the_features_cancels_but_a_per_dimension_scaling_does_not():
    # kNN order is unchanged by c > 0, A scales by c^(2 gamma), W = A A^T by c^(4 gamma), which
    # D^-1/2 W D^-1/2 divides out.  alpha = 0.5 keeps the softmax away from saturation.
    features, given = random_case()
    reference = dilute(features, given, alpha=0.5).labels
    for c in (1e-3, 0.5, 7.0, 1e3):
        assert torch.allclose(dilute(c * features, given, alpha=0.5).labels, reference, atol=1e-5), c
    per_dimension = torch.linspace(0.2, 5.0, features.shape[1])
    assert (dilute(features * per_dimension, given, alpha=0.5).labels - reference).abs().max() > 1e-2


def test_many_iterations_reach_the_closed_form_and_few_do_not():
    # Z^t = aWZ^(t-1) + (1-a)Y has the fixed point (1-a)(I-aW)^-1 Y; dilute divides by (1-a),
    # so the iterate solver's softmax converges to the closed form's.
    features, given = random_case()
    closed = dilute(features, given, alpha=0.9).labels
    converged = dilute(features, given, alpha=0.9, solver="iterate", iterations=400).labels
    assert torch.allclose(converged, closed, atol=1e-5)
    truncated = dilute(features, given, alpha=0.9, solver="iterate", iterations=3).labels
    assert (truncated - closed).abs().max() > 1e-2
    # Zero steps of propagation: Y / (1 - a) itself, i.e. no neighbour has spoken yet.
    assert torch.allclose(dilute(features, given, alpha=0.9, solver="iterate", iterations=0).labels,
                          (given / 0.1).softmax(1))


def test_k_beyond_the_batch_is_clamped_and_a_batch_of_one_keeps_its_label():
    features, given = random_case(size=6)
    assert torch.equal(dilute(features, given, k=100).labels, dilute(features, given, k=6).labels)
    for fallback in ("batch", "row"):  # a sample alone has no neighbour: it falls back, counted
        single = dilute(features[:1], given[:1], fallback=fallback)
        assert torch.allclose(single.labels, given[:1].softmax(1))
        assert single.fell_back.item() == 1.0 and single.fallback_rows.item() == 1.0


@pytest.mark.parametrize("fallback", ["batch", "row"])
def test_isolated_samples_keep_their_label_and_nan_falls_back_to_the_input(fallback):
    given = F.one_hot(torch.tensor([0, 1, 2]), 3).float()
    orthogonal = torch.eye(3)  # no positive similarity with anyone: every row of W is zero
    out = dilute(orthogonal, given, fallback=fallback)
    assert torch.allclose(out.labels, given.softmax(1))
    assert out.fell_back.item() == 1.0 and out.fallback_rows.item() == 1.0
    broken = torch.ones(3, 3)
    broken[1, 1] = float("nan")  # NaN features: every row's distances, so every row of Z, are NaN
    out = dilute(broken, given, fallback=fallback)
    assert torch.allclose(out.labels, given.softmax(1)) and out.fell_back.item() == 1.0


def clusters_with_an_outcast() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """two_clusters with planted mislabels, plus one sample (the last) whose features are
    anti-aligned with everyone's: all its similarities clamp to 0, so its row of A and of W is zero."""
    features, clean = two_clusters()
    noisy = clean.clone()
    noisy[[2, 7, 13]] = 1 - noisy[[2, 7, 13]]
    outcast = torch.tensor([[0.0, 0.0, 0.0, -1.0]])  # the clusters' features are all >= 0
    labels = torch.cat([noisy, torch.tensor([0])])
    return torch.cat([features, outcast]), F.one_hot(labels, 2).float(), clean


def test_an_isolated_sample_makes_the_whole_batch_fall_back_as_in_the_official_code():
    features, given, _ = clusters_with_an_outcast()
    out = dilute(features, given)  # the default: fallback="batch"
    # The official prop_label on this batch: 1/sqrt(0) = inf in D turns all of D W D, so all of Z,
    # into NaN, and `Z = cur` hands back every row's input.
    official = official_prop_label(features, given, 8, 3.0, 0.99)
    assert torch.allclose(official, given.double().softmax(1))
    assert torch.allclose(out.labels.double(), official)
    assert out.fell_back.item() == 1.0 and out.fallback_rows.item() == 1.0


def test_fallback_row_replaces_only_the_isolated_row():
    features, given, clean = clusters_with_an_outcast()
    out = dilute(features, given, fallback="row")
    assert torch.allclose(out.labels[-1], given[-1].softmax(0))
    # The others propagate as if the outcast were not there (its row and column of W are zero),
    # so the planted mislabels are corrected.
    without = dilute(features[:-1], given[:-1])
    assert without.fell_back.item() == 0.0
    assert torch.allclose(out.labels[:-1], without.labels, atol=1e-6)
    assert torch.equal(out.labels[:-1].argmax(1), clean)
    assert out.fell_back.item() == 1.0 and out.fallback_rows.item() == pytest.approx(1 / 21)


# -------------------------------------------------------------------------------------- options
def test_soft_and_hard_selection():
    diluted = torch.tensor([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.4, 0.45, 0.15]])
    noisy = torch.tensor([0, 1, 0])
    assert torch.allclose(sample_weights(diluted, noisy, "soft"), torch.tensor([0.6, 0.3, 0.4]))
    assert torch.equal(sample_weights(diluted, noisy, "hard"), torch.tensor([1.0, 0.0, 0.0]))


def test_temporal_mixing_functions():
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    previous = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    visited = torch.tensor([True, False])
    assert torch.allclose(temporal_input(onehot, previous, visited, 0.9), torch.tensor([[0.92, 0.08], [0.0, 1.0]]))
    fresh = torch.tensor([[0.6, 0.4], [0.3, 0.7]])
    assert torch.allclose(temporal_output(fresh, previous, visited, 0.9), torch.tensor([[0.24, 0.76], [0.3, 0.7]]))


class IdentityFeatures(nn.Module):
    """Features = the flattened input, so the test chooses the embeddings."""

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x, return_features=False):
        features = x.flatten(1)
        logits = self.fc(features)
        return (logits, features) if return_features else logits


def make_lend(num_train=4, classes=3, dim=4, device="cpu", **overrides) -> LEND:
    device = torch.device(device)
    ctx = MethodContext(num_classes=classes, num_train=num_train, epochs=20, noise_kind="sym", noise_rate=0.4,
                        device=device, seed=0, build_network=lambda i: IdentityFeatures(dim, classes).to(device))
    return LEND(build_hparams("lend", {k: str(v) for k, v in overrides.items()}), ctx)


def isolated_batch() -> Batch:
    # Orthogonal embeddings: no sample has a neighbour, so dilute returns softmax(its input) and
    # the buffer shows exactly what the temporal rule fed in.
    return Batch(images=torch.eye(4), labels=torch.tensor([0, 1, 2, 0]), index=torch.tensor([0, 1, 2, 3]))


def hand_built_buffer(method: LEND) -> torch.Tensor:
    previous = torch.tensor([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    method.diluted_labels.copy_(previous)
    method.visited.copy_(torch.tensor([True, True, True, False]))
    return previous


def test_input_mixing_starts_after_the_warmup():
    batch = isolated_batch()
    onehot = F.one_hot(batch.labels, 3).float()
    method = make_lend()
    hand_built_buffer(method)
    method.train_step(batch, epoch=9)  # still in warm-up: plain one-hot labels are diluted
    assert torch.allclose(method.diluted_labels, onehot.softmax(1))
    method = make_lend()
    previous = hand_built_buffer(method)
    out = method.train_step(batch, epoch=10)
    expected = torch.cat([(0.9 * onehot[:3] + 0.1 * previous[:3]), onehot[3:]]).softmax(1)
    assert torch.allclose(method.diluted_labels, expected)
    assert method.visited.all()
    assert torch.allclose(out.selected[""], expected.gather(1, batch.labels[:, None]).squeeze(1))
    assert torch.equal(out.relabelled["diluted_label"], expected.argmax(1))


def test_output_averaging_follows_eq5_from_the_first_epoch_and_hard_weights_are_0_or_1():
    batch = isolated_batch()
    fresh = F.one_hot(batch.labels, 3).float().softmax(1)
    method = make_lend(temporal="output", selection="hard")
    previous = hand_built_buffer(method)
    out = method.train_step(batch, epoch=0)
    expected = torch.cat([0.1 * fresh[:3] + 0.9 * previous[:3], fresh[3:]])
    assert torch.allclose(method.diluted_labels, expected)
    # argmax of the averaged labels: [2, 2, 2, 0] against noisy [0, 1, 2, 0]
    assert torch.equal(out.selected[""], torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_loss_is_the_batch_mean_of_weighted_cross_entropy_and_buffers_round_trip():
    batch = isolated_batch()
    method = make_lend()
    out = method.train_step(batch, epoch=0)
    logits = method.net(batch.images)
    expected = (out.selected[""] * F.cross_entropy(logits, batch.labels, reduction="none")).mean()
    assert torch.allclose(out.loss, expected)
    copy = make_lend()
    copy.load_state_dict(method.state_dict())
    assert torch.equal(copy.diluted_labels, method.diluted_labels) and copy.visited.all()


@pytest.mark.parametrize("fallback, rows", [("batch", 1.0), ("row", 1 / 21)])
def test_the_step_reports_fallbacks_per_batch_and_per_row(fallback, rows):
    features, given, _ = clusters_with_an_outcast()
    method = make_lend(num_train=21, classes=2, dim=4, fallback=fallback)
    batch = Batch(images=features, labels=given.argmax(1), index=torch.arange(21))
    out = method.train_step(batch, epoch=0)
    assert out.stats["nan_fallbacks"].item() == 1.0  # one batch, which fell back
    assert out.stats["fallback_rows"].item() == pytest.approx(rows)
    fallen = out.selected[""] == given.softmax(1).gather(1, batch.labels[:, None]).squeeze(1)
    assert int(fallen.sum()) == (21 if fallback == "batch" else 1)


@pytest.mark.parametrize("bad", [{"selection": "topk"}, {"solver": "cg"}, {"temporal": "both"}, {"alpha": 1.0},
                                 {"k": 0}, {"beta": 1.5}, {"fallback": "none"}])
def test_bad_options_are_refused(bad):
    with pytest.raises(BenchError):
        build_hparams("lend", {k: str(v) for k, v in bad.items()})


# -------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_original_trains_as_the_official_code_on_cifar(dataset):
    # zhangchuang96/lend main.py: PreActResNet18 without a final BN-ReLU, data/cifar.py without
    # Normalize, SGD 0.05 m0.9 wd5e-4, batch 256, 200 epochs, lr /10 at 100, crop+flip.
    recipe = resolve_recipe("original", dataset, "lend")
    assert recipe.model == "lend_preact_resnet18" and recipe.normalize is False and recipe.mean_std is None
    assert (recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.batch_size, recipe.epochs,
            recipe.schedule, recipe.milestones, recipe.lr_gamma, recipe.augment, recipe.crop_padding) == (
        "sgd", 0.05, 0.9, 5e-4, 256, 200, "multistep", (100,), 0.1, True, 4)
    # The shared default stays the paper's ResNet-18 on normalised inputs.
    shared = resolve_recipe("lend-paper", dataset, "lend")
    assert shared.model == "resnet18" and shared.normalize is True
    assert resolve_recipe("original", dataset, "lend", model="resnet18").model == "resnet18"  # --model wins


@pytest.mark.parametrize("dataset", ["digits", "mnist", "animal10n"])
def test_original_elsewhere_keeps_the_default_protocol(dataset):
    from noisybench.bench.trainer.protocols import default_protocol

    assert resolve_recipe("original", dataset, "lend") == resolve_recipe(default_protocol(dataset), dataset, "lend")


# -------------------------------------------------------------------------------------- trainer
def test_the_trial_records_the_diagnostics(tmp_path):
    spec = TrialSpec(dataset="digits", method="lend", noise="sym:0.4", seed=0, protocol="quick", epochs=2)
    run_trial(spec, tmp_path, device="cpu")
    lines = TrialStore(tmp_path).trial(spec).read_metrics()
    assert len(lines) == 2
    for key in ("diluted_label_acc", "model_pred_acc", "label_precision", "label_recall", "weight_noisy",
                "kept_fraction", "nan_fallbacks", "fallback_rows"):
        assert key in lines[-1], key
    assert lines[-1]["nan_fallbacks"] == 0.0
    # With 40% noise, weights must favour the clean samples from the start.
    assert lines[-1]["label_recall"] > lines[-1]["weight_noisy"]


# -------------------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_under_bf16_autocast_matches_cpu_without_a_host_sync():
    features, given = random_case(size=64, dim=32)
    features = features.bfloat16()  # what the network hands over under autocast
    cpu = dilute(features.float(), given).labels
    with torch.autocast("cuda", dtype=torch.bfloat16):
        torch.cuda.set_sync_debug_mode("error")
        try:
            gpu = dilute(features.cuda(), given.cuda())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert gpu.labels.dtype == torch.float32
    assert torch.allclose(gpu.labels.cpu(), cpu, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("options", [{}, {"temporal": "output", "selection": "hard", "solver": "iterate"}])
def test_cuda_train_step_has_no_host_sync(options):
    method = make_lend(num_train=64, classes=10, dim=32, device="cuda", **options)
    g = torch.Generator().manual_seed(0)
    batch = Batch(images=torch.rand(32, 32, generator=g).cuda(), labels=torch.randint(0, 10, (32,), generator=g).cuda(),
                  index=torch.randperm(64, generator=g)[:32].cuda())
    for epoch in (0, 10):  # before and after the warm-up
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = method.train_step(batch, epoch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        out.loss.backward()
        assert torch.isfinite(out.loss)
