"""Sampling: inverse-CDF draws, realised rates on 50k labels, seeding, and Xia et al.'s instance noise."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import truncnorm

from noisybench.datasets.cifar import CIFAR10_ASYM_MAP, cifar100_asym_map
from noisybench.datasets.registry import Dataset
from noisybench.noise import apply_noise, parse_noise
from noisybench.noise.instance import FLIP_RATE_STD, part_dependent_labels, part_dependent_probabilities
from noisybench.noise.sampling import (
    _inverse_cdf,
    empirical_transition,
    noise_generator,
    realised_rate,
    sample_from_rows,
    sample_from_transition,
)

NUM_SAMPLES = 50_000


def fake_dataset(
    name: str = "cifar10",
    num_classes: int = 10,
    num_samples: int = NUM_SAMPLES,
    images: np.ndarray | None = None,
    asym_map: dict[int, int] | None = None,
    label_seed: int = 0,
) -> Dataset:
    """Balanced clean labels in shuffled order; 1x1x1 black images unless given."""
    labels = np.random.default_rng(label_seed).permutation(np.arange(num_samples) % num_classes).astype(np.int64)
    if images is None:
        images = np.zeros((num_samples, 1, 1, 1), np.uint8)
    return Dataset(
        name=name,
        train_images=images,
        train_labels=labels,
        test_images=np.zeros((2, *images.shape[1:]), np.uint8),
        test_labels=np.zeros(2, np.int64),
        class_names=tuple(f"class{c}" for c in range(num_classes)),
        asym_map=asym_map,
    )


@pytest.fixture(scope="module")
def cifar10_like() -> Dataset:
    return fake_dataset(asym_map=dict(CIFAR10_ASYM_MAP))


@pytest.fixture(scope="module")
def random_images() -> Dataset:
    """CIFAR-shaped in channels, smaller in space (3x8x8) to keep the projection fast."""
    images = np.random.default_rng(1).integers(0, 256, size=(NUM_SAMPLES, 3, 8, 8), dtype=np.uint8)
    return fake_dataset(name="random", images=images)


# --- the inverse-CDF sampler ---------------------------------------------------------------


def test_sample_from_rows_follows_the_probabilities():
    rng = np.random.default_rng(0)
    probabilities = np.tile([0.1, 0.0, 0.6, 0.3], (200_000, 1))
    labels = sample_from_rows(probabilities, rng)
    assert labels.dtype == np.int64
    frequencies = np.bincount(labels, minlength=4) / len(labels)
    np.testing.assert_allclose(frequencies, [0.1, 0.0, 0.6, 0.3], atol=0.005)
    assert not (labels == 1).any(), "a class of probability 0 is never drawn"


def test_sample_from_rows_uses_one_uniform_per_row_in_order():
    probabilities = np.array([[0.5, 0.5], [0.2, 0.8], [1.0, 0.0]])
    uniforms = np.random.default_rng(7).random(3)
    expected = [int(uniforms[0] >= 0.5), int(uniforms[1] >= 0.2), 0]
    np.testing.assert_array_equal(sample_from_rows(probabilities, np.random.default_rng(7)), expected)


def test_a_draw_at_the_top_of_the_cdf_stays_in_the_support():
    """u * total can round up to total; the draw then falls back to the last possible class."""
    probabilities = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.2, 0.3, 0.1, 0.4]])
    drawn = _inverse_cdf(probabilities, np.ones(3))  # the worst case of rounding: u * total == total
    np.testing.assert_array_equal(drawn, [1, 1, 3])
    drawn = _inverse_cdf(probabilities, np.zeros(3))
    np.testing.assert_array_equal(drawn, [0, 1, 0])


def test_sample_from_transition_keeps_rows_and_rejects_bad_input():
    clean = np.repeat(np.arange(3), 1000)
    transition = np.eye(3)[[1, 2, 0]]  # a deterministic permutation
    np.testing.assert_array_equal(sample_from_transition(clean, transition, np.random.default_rng(0)), (clean + 1) % 3)
    with pytest.raises(ValueError, match="sum to 1"):
        sample_from_transition(clean, np.full((3, 3), 0.5), np.random.default_rng(0))
    with pytest.raises(ValueError, match="square"):
        sample_from_transition(clean, np.ones((3, 2)) / 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        sample_from_transition(clean + 1, np.eye(3), np.random.default_rng(0))


def test_empirical_transition_counts_and_rate():
    clean = np.array([0, 0, 1, 1, 2, 2, 2])
    noisy = np.array([0, 1, 1, 1, 0, 2, 2])
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    counts = empirical_transition(clean, noisy, 3)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected)
    assert realised_rate(clean, noisy) == pytest.approx(2 / 7)
    assert realised_rate(np.array([], np.int64), np.array([], np.int64)) == 0.0


# --- realised rates on 50,000 labels ----------------------------------------------------------


def row_frequencies(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("text, rate", [("sym:0.2", 0.2), ("sym:0.4", 0.4), ("sym:0.8", 0.8), ("pair:0.45", 0.45)])
def test_class_independent_kinds_realise_their_rate(cifar10_like, text, rate):
    noisy = apply_noise(text, cifar10_like, seed=0)
    assert noisy.realised_rate == pytest.approx(rate, abs=0.01)
    assert noisy.nominal_rate == rate
    # Every row of the empirical matrix follows the designed one (counts ~5,000 per class).
    np.testing.assert_allclose(row_frequencies(noisy.empirical), noisy.transition, atol=0.025)


def test_sym_never_redraws_the_true_class(cifar10_like):
    """Transition convention: flips go only to other classes, so the diagonal keeps exactly 1 - R."""
    noisy = apply_noise("sym:0.4", cifar10_like, seed=3)
    np.testing.assert_allclose(np.diag(row_frequencies(noisy.empirical)), 0.6, atol=0.025)


def test_asym_on_cifar10_flips_half_the_classes(cifar10_like):
    noisy = apply_noise("asym:0.4", cifar10_like, seed=0)
    assert noisy.realised_rate == pytest.approx(0.2, abs=0.01), "5 of 10 classes flip with 0.4: about R/2"
    off_diagonal = noisy.empirical.copy()
    np.fill_diagonal(off_diagonal, 0)
    allowed = np.zeros((10, 10), bool)
    for source, target in CIFAR10_ASYM_MAP.items():
        allowed[source, target] = True
    assert (off_diagonal[~allowed] == 0).all(), "no flip outside the map"
    for source, target in CIFAR10_ASYM_MAP.items():
        assert off_diagonal[source, target] / noisy.empirical[source].sum() == pytest.approx(0.4, abs=0.03)


def test_asym_on_cifar100_blocks_flips_every_class():
    dataset = fake_dataset(name="cifar100", num_classes=100, asym_map=cifar100_asym_map())
    noisy = apply_noise("asym:0.3", dataset, seed=0)
    assert noisy.realised_rate == pytest.approx(0.3, abs=0.01)
    # Most labels stay clean at 0.3; the only other label of each class is its block successor.
    np.testing.assert_array_equal(noisy.empirical.argmax(axis=1), np.arange(100))
    assert ((noisy.empirical > 0).sum(axis=1) == 2).all()
    second = np.argsort(noisy.empirical, axis=1)[:, -2]
    np.testing.assert_array_equal(second, [cifar100_asym_map()[c] for c in range(100)])


def test_empirical_matrix_is_consistent_with_the_labels(cifar10_like):
    noisy = apply_noise("sym:0.4", cifar10_like, seed=0)
    assert noisy.empirical.sum() == NUM_SAMPLES
    np.testing.assert_array_equal(noisy.empirical.sum(axis=1), np.bincount(cifar10_like.train_labels, minlength=10))
    np.testing.assert_array_equal(noisy.empirical.sum(axis=0), np.bincount(noisy.labels, minlength=10))
    assert 1 - np.trace(noisy.empirical) / NUM_SAMPLES == pytest.approx(noisy.realised_rate)


# --- seeding ----------------------------------------------------------------------------------


def test_same_seed_same_labels_other_seed_other_labels(cifar10_like):
    first = apply_noise("sym:0.4", cifar10_like, seed=0).labels
    np.testing.assert_array_equal(first, apply_noise("sym:0.4", cifar10_like, seed=0).labels)
    other = apply_noise("sym:0.4", cifar10_like, seed=1).labels
    assert (first != other).mean() > 0.3


def test_other_dataset_name_other_labels(cifar10_like):
    renamed = fake_dataset(name="cifar10-copy", asym_map=dict(CIFAR10_ASYM_MAP))
    np.testing.assert_array_equal(renamed.train_labels, cifar10_like.train_labels)
    first = apply_noise("sym:0.4", cifar10_like, seed=0).labels
    assert (first != apply_noise("sym:0.4", renamed, seed=0).labels).mean() > 0.3


def test_spellings_of_one_spec_share_labels_and_other_specs_do_not_share_draws(cifar10_like):
    canonical = apply_noise("sym:0.4", cifar10_like, seed=0).labels
    np.testing.assert_array_equal(canonical, apply_noise(" SYM:.40", cifar10_like, seed=0).labels)
    np.testing.assert_array_equal(canonical, apply_noise(parse_noise("sym:0.4"), cifar10_like, seed=np.int64(0)).labels)
    # With a shared uniform stream, sym:0.2's flips would be a subset of sym:0.4's.
    lighter = apply_noise("sym:0.2", cifar10_like, seed=0).labels
    flipped_light = lighter != cifar10_like.train_labels
    flipped_heavy = canonical != cifar10_like.train_labels
    assert (flipped_light & ~flipped_heavy).mean() > 0.05


def test_global_random_state_is_neither_read_nor_written(cifar10_like):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = apply_noise("inst:0.3", fake_dataset(num_samples=500, images=np.ones((500, 1, 2, 2), np.uint8)), seed=0)
    assert (np.random.get_state()[1] == before).all()
    np.random.seed(999)
    second = apply_noise("inst:0.3", fake_dataset(num_samples=500, images=np.ones((500, 1, 2, 2), np.uint8)), seed=0)
    np.testing.assert_array_equal(first.labels, second.labels)


def test_noise_generator_is_a_pure_function_of_its_three_inputs():
    draws = noise_generator("cifar10", "sym:0.4", 0).random(4)
    np.testing.assert_array_equal(draws, noise_generator("cifar10", "sym:0.4", 0).random(4))
    assert not np.array_equal(draws, noise_generator("cifar10", "sym:0.4", 1).random(4))
    assert not np.array_equal(draws, noise_generator("cifar100", "sym:0.4", 0).random(4))
    assert not np.array_equal(draws, noise_generator("cifar10", "pair:0.4", 0).random(4))
    with pytest.raises(TypeError):
        noise_generator("cifar10", "sym:0.4", "0")  # type: ignore[arg-type]


# --- instance-dependent noise (Xia et al. 2020) -------------------------------------------------


def reference_probabilities(images, labels, num_classes, rate, rng):
    """Xia et al.'s get_instance_noisy_label, transcribed sample by sample (float64, numpy)."""
    flip_rates = truncnorm.rvs(
        (0 - rate) / FLIP_RATE_STD, (1 - rate) / FLIP_RATE_STD, loc=rate, scale=FLIP_RATE_STD,
        size=len(labels), random_state=rng,
    )
    weights = rng.standard_normal((num_classes, images[0].size, num_classes))
    rows = []
    for index, (image, label) in enumerate(zip(images, labels)):
        logits = image.astype(np.float64).reshape(1, -1) @ weights[label]
        logits = logits[0]
        logits[label] = -np.inf
        softmax = np.exp(logits - logits.max())
        softmax /= softmax.sum()
        row = flip_rates[index] * softmax
        row[label] += 1 - flip_rates[index]
        rows.append(row)
    return np.array(rows)


def test_instance_probabilities_match_the_reference_loop():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(300, 3, 4, 4), dtype=np.uint8)
    labels = rng.integers(0, 5, size=300)
    ours = part_dependent_probabilities(images, labels, 5, 0.4, np.random.default_rng(11))
    reference = reference_probabilities(images, labels, 5, 0.4, np.random.default_rng(11))
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0)


def test_instance_labels_are_drawn_after_the_probabilities_from_the_same_generator():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(300, 1, 4, 4), dtype=np.uint8)
    labels = rng.integers(0, 4, size=300)
    generator = np.random.default_rng(11)
    probabilities = part_dependent_probabilities(images, labels, 4, 0.3, generator)
    expected = sample_from_rows(probabilities, generator)
    np.testing.assert_array_equal(part_dependent_labels(images, labels, 4, 0.3, np.random.default_rng(11)), expected)


def test_instance_noise_flattens_channels_first():
    """The (C, H, W) flatten order is part of the definition: channels-last gives other labels."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(400, 3, 4, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=400)
    channels_first = part_dependent_probabilities(images, labels, 10, 0.4, np.random.default_rng(0))
    as_channels_last = np.ascontiguousarray(images.transpose(0, 2, 3, 1)).reshape(400, 3, 4, 4)
    channels_last = part_dependent_probabilities(as_channels_last, labels, 10, 0.4, np.random.default_rng(0))
    assert not np.allclose(channels_first, channels_last)


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_instance_noise_realises_the_mean_flip_rate(random_images, rate):
    noisy = apply_noise(f"inst:{rate}", random_images, seed=0)
    expected = truncnorm.mean((0 - rate) / FLIP_RATE_STD, (1 - rate) / FLIP_RATE_STD, loc=rate, scale=FLIP_RATE_STD)
    assert expected == pytest.approx(rate, abs=0.006)
    assert noisy.realised_rate == pytest.approx(expected, abs=0.01)
    assert noisy.transition is None and noisy.nominal_rate == rate
    # Instance noise is not class-independent: flips concentrate on a few classes per row.
    off_diagonal = row_frequencies(noisy.empirical)
    np.fill_diagonal(off_diagonal, 0)
    assert off_diagonal.max() > 2 * rate / 9


def test_instance_noise_on_digits_is_deterministic():
    import noisybench.datasets as datasets

    digits = datasets.load("digits")
    first = apply_noise("inst:0.4", digits, seed=0)
    np.testing.assert_array_equal(first.labels, apply_noise("inst:0.4", digits, seed=0).labels)
    assert first.realised_rate == pytest.approx(0.4, abs=0.05)
