"""Designed transition matrices and asymmetric maps: exact conventions of shared/noise.md."""
from __future__ import annotations

import numpy as np
import pytest

from noisybench.datasets.cifar import CIFAR10_ASYM_MAP, cifar100_asym_map
from noisybench.datasets.digits import DIGITS_ASYM_MAP
from noisybench.datasets.mnist import MNIST_ASYM_MAP
from noisybench.noise.transition import (
    asymmetric_transition,
    identity_transition,
    pair_transition,
    symmetric_transition,
)


def assert_stochastic(matrix: np.ndarray, num_classes: int) -> None:
    assert matrix.shape == (num_classes, num_classes)
    assert matrix.dtype == np.float64
    assert (matrix >= 0).all()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("num_classes", [2, 10, 100])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 0.8])
def test_symmetric_keeps_1_minus_r_and_spreads_r_over_the_other_classes(num_classes, rate):
    matrix = symmetric_transition(num_classes, rate)
    assert_stochastic(matrix, num_classes)
    np.testing.assert_allclose(np.diag(matrix), 1 - rate)
    off_diagonal = matrix[~np.eye(num_classes, dtype=bool)]
    np.testing.assert_allclose(off_diagonal, rate / (num_classes - 1))


def test_symmetric_cifar10_at_40_percent_by_hand():
    matrix = symmetric_transition(10, 0.4)
    assert matrix[3, 3] == pytest.approx(0.6)
    assert matrix[3, 5] == pytest.approx(0.4 / 9)


@pytest.mark.parametrize("num_classes", [2, 10, 100])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.45])
def test_pair_flips_to_the_next_class_cyclically(num_classes, rate):
    matrix = pair_transition(num_classes, rate)
    assert_stochastic(matrix, num_classes)
    expected = np.zeros((num_classes, num_classes))
    for cls in range(num_classes):
        expected[cls, cls] += 1 - rate
        expected[cls, (cls + 1) % num_classes] += rate
    np.testing.assert_array_equal(matrix, expected)


def test_pair_on_five_classes_by_hand():
    expected = np.array(
        [
            [0.55, 0.45, 0, 0, 0],
            [0, 0.55, 0.45, 0, 0],
            [0, 0, 0.55, 0.45, 0],
            [0, 0, 0, 0.55, 0.45],
            [0.45, 0, 0, 0, 0.55],
        ]
    )
    np.testing.assert_allclose(pair_transition(5, 0.45), expected)


def test_cifar10_map_is_patrinis():
    # truck->automobile, bird->airplane, deer->horse, cat<->dog
    assert dict(CIFAR10_ASYM_MAP) == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def test_mnist_map_is_patrinis_and_digits_uses_the_same():
    assert dict(MNIST_ASYM_MAP) == {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
    assert dict(DIGITS_ASYM_MAP) == dict(MNIST_ASYM_MAP)


def test_cifar100_map_is_the_cyclic_block_of_five():
    flip_map = cifar100_asym_map()
    assert len(flip_map) == 100
    assert flip_map[0] == 1 and flip_map[3] == 4 and flip_map[4] == 0
    assert flip_map[5] == 6 and flip_map[9] == 5 and flip_map[99] == 95
    for cls, target in flip_map.items():
        assert target // 5 == cls // 5, "flips stay inside their block of 5"
        assert target != cls
    assert sorted(flip_map.values()) == list(range(100)), "a permutation: every class is someone's target"
    assert cifar100_asym_map() is not cifar100_asym_map(), "a fresh dict each call, safe to mutate"


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.4])
def test_asymmetric_cifar10_matrix(rate):
    matrix = asymmetric_transition(10, rate, CIFAR10_ASYM_MAP)
    assert_stochastic(matrix, 10)
    expected = np.eye(10)
    for source, target in {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}.items():
        expected[source, source] = 1 - rate
        expected[source, target] = rate
    np.testing.assert_allclose(matrix, expected)
    for untouched in (0, 1, 6, 7, 8):
        np.testing.assert_array_equal(matrix[untouched], np.eye(10)[untouched])


def test_asymmetric_digits_matrix():
    matrix = asymmetric_transition(10, 0.4, DIGITS_ASYM_MAP)
    assert_stochastic(matrix, 10)
    assert matrix[2, 7] == pytest.approx(0.4) and matrix[2, 2] == pytest.approx(0.6)
    assert matrix[3, 8] == pytest.approx(0.4)
    assert matrix[5, 6] == pytest.approx(0.4) and matrix[6, 5] == pytest.approx(0.4)
    assert matrix[7, 1] == pytest.approx(0.4)
    assert matrix[1, 1] == 1.0 and matrix[8, 8] == 1.0, "targets that are not sources stay clean"


def test_asymmetric_cifar100_matrix_matches_patrinis_block_builder():
    rate = 0.4
    block = (1 - rate) * np.eye(5)
    for i in range(4):
        block[i, i + 1] = rate
    block[4, 0] = rate
    expected = np.kron(np.eye(20), block)  # build_for_cifar100: the 5x5 block on the diagonal 20 times
    matrix = asymmetric_transition(100, rate, cifar100_asym_map())
    assert_stochastic(matrix, 100)
    np.testing.assert_allclose(matrix, expected)


def test_identity():
    np.testing.assert_array_equal(identity_transition(4), np.eye(4))


@pytest.mark.parametrize(
    "build",
    [
        lambda: symmetric_transition(10, 1.0),
        lambda: symmetric_transition(10, -0.1),
        lambda: symmetric_transition(1, 0.2),
        lambda: pair_transition(10, 1.2),
        lambda: asymmetric_transition(10, 0.2, {3: 3}),
        lambda: asymmetric_transition(10, 0.2, {3: 10}),
    ],
)
def test_invalid_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build()
