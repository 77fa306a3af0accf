"""The real CIFAR-10N / CIFAR-100N label files (Wei et al., ICLR 2022) in shared/data/cifar-n.

Skipped, with the reason, where the files are absent.  The datasets are fakes with the
files' own clean labels and 1x1 images: these tests check the labels, not the pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from noisybench.core.errors import BenchError
from noisybench.datasets.registry import Dataset
from noisybench.noise import apply_noise, check_noise_for_dataset
from noisybench.noise.human import HUMAN_LABEL_SETS, read_label_file

# The repository sits next to shared/: <workspace>/main (this repo) and <workspace>/shared.
CIFAR_N_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar-n"
CIFAR10N_FILE = CIFAR_N_DIR / "CIFAR-10_human.pt"
CIFAR100N_FILE = CIFAR_N_DIR / "CIFAR-100_human.pt"

pytestmark = pytest.mark.skipif(
    not (CIFAR10N_FILE.is_file() and CIFAR100N_FILE.is_file()),
    reason=f"CIFAR-N label files not found in {CIFAR_N_DIR} (get them from github.com/UCSC-REAL/cifar-10-100n data/)",
)

# Wei et al. 2022, Table 1 / shared/noise.md.
PUBLISHED_RATES = {
    "cifar10n:aggre": 0.0901,
    "cifar10n:rand1": 0.1723,
    "cifar10n:rand2": 0.1812,
    "cifar10n:rand3": 0.1764,
    "cifar10n:worse": 0.4021,
    "cifar100n:noisy": 0.4020,
}


def fake_cifar(name: str, clean_labels: np.ndarray, num_classes: int) -> Dataset:
    return Dataset(
        name=name,
        train_images=np.zeros((len(clean_labels), 1, 1, 1), np.uint8),
        train_labels=np.asarray(clean_labels, dtype=np.int64),
        test_images=np.zeros((1, 1, 1, 1), np.uint8),
        test_labels=np.zeros(1, np.int64),
        class_names=tuple(str(c) for c in range(num_classes)),
    )


@pytest.fixture(scope="module")
def cifar10() -> Dataset:
    return fake_cifar("cifar10", read_label_file(CIFAR10N_FILE)["clean_label"], 10)


@pytest.fixture(scope="module")
def cifar100() -> Dataset:
    return fake_cifar("cifar100", read_label_file(CIFAR100N_FILE)["clean_label"], 100)


def test_files_hold_the_documented_keys_with_50000_labels():
    cifar10_arrays = read_label_file(CIFAR10N_FILE)
    expected10 = {"clean_label", "aggre_label", "worse_label", "random_label1", "random_label2", "random_label3"}
    assert expected10 <= set(cifar10_arrays)
    cifar100_arrays = read_label_file(CIFAR100N_FILE)
    assert {"clean_label", "noisy_label"} <= set(cifar100_arrays)
    for arrays, keys, num_classes in [(cifar10_arrays, expected10, 10), (cifar100_arrays, {"clean_label", "noisy_label"}, 100)]:
        for key in keys:
            assert arrays[key].shape == (50_000,) and arrays[key].dtype == np.int64
            assert arrays[key].min() == 0 and arrays[key].max() == num_classes - 1
    # CIFAR-10's training set has exactly 5,000 images per class.
    np.testing.assert_array_equal(np.bincount(cifar10_arrays["clean_label"]), [5000] * 10)


@pytest.mark.parametrize("text", [text for text in PUBLISHED_RATES if text.startswith("cifar10n")])
def test_cifar10n_realised_rates_match_the_paper(cifar10, text):
    noisy = apply_noise(text, cifar10, seed=0, data_root=CIFAR_N_DIR.parent)
    assert noisy.labels.shape == (50_000,) and noisy.labels.dtype == np.int64
    assert noisy.realised_rate == pytest.approx(PUBLISHED_RATES[text], abs=1e-4)
    assert noisy.nominal_rate == PUBLISHED_RATES[text]
    assert noisy.transition is None
    assert noisy.empirical.sum() == 50_000
    key = HUMAN_LABEL_SETS[tuple(text.split(":"))].key
    np.testing.assert_array_equal(noisy.labels, read_label_file(CIFAR10N_FILE)[key])


def test_cifar100n_realised_rate_matches_the_paper(cifar100):
    noisy = apply_noise("cifar100n:noisy", cifar100, seed=0, data_root=CIFAR_N_DIR.parent)
    assert noisy.realised_rate == pytest.approx(0.4020, abs=1e-4)
    assert noisy.nominal_rate == 0.4020
    assert noisy.empirical.shape == (100, 100)


def test_human_labels_do_not_depend_on_the_seed(cifar10):
    first = apply_noise("cifar10n:worse", cifar10, seed=0, data_root=CIFAR_N_DIR.parent).labels
    np.testing.assert_array_equal(first, apply_noise("cifar10n:worse", cifar10, seed=5, data_root=CIFAR_N_DIR.parent).labels)


def test_the_file_is_also_found_directly_under_the_data_root(cifar10):
    check_noise_for_dataset("cifar10n:aggre", cifar10, data_root=CIFAR_N_DIR)


@pytest.mark.parametrize(
    "text, name, path, num_classes",
    [("cifar10n:worse", "cifar10", CIFAR10N_FILE, 10), ("cifar100n:noisy", "cifar100", CIFAR100N_FILE, 100)],
)
def test_images_in_another_order_are_refused(text, name, path, num_classes):
    clean = read_label_file(path)["clean_label"]
    shuffled = fake_cifar(name, np.random.default_rng(0).permutation(clean), num_classes)
    with pytest.raises(BenchError) as caught:
        check_noise_for_dataset(text, shuffled, data_root=CIFAR_N_DIR.parent)
    message = str(caught.value)
    assert "\n" not in message
    assert "clean_label disagrees with" in message and "not in PyTorch's training order" in message
    with pytest.raises(BenchError, match="clean_label disagrees"):
        apply_noise(text, shuffled, seed=0, data_root=CIFAR_N_DIR.parent)


def test_one_swapped_pair_is_enough_to_refuse(cifar10):
    clean = cifar10.train_labels.copy()
    first, second = 0, int(np.flatnonzero(clean != clean[0])[0])
    clean[[first, second]] = clean[[second, first]]
    with pytest.raises(BenchError, match="at 2 of 50,000 images"):
        check_noise_for_dataset("cifar10n:aggre", fake_cifar("cifar10", clean, 10), data_root=CIFAR_N_DIR.parent)


def test_a_subsampled_training_set_is_refused(cifar10):
    subset = fake_cifar("cifar10", cifar10.train_labels[:45_000], 10)
    with pytest.raises(BenchError, match="45,000 training images; use the full"):
        check_noise_for_dataset("cifar10n:worse", subset, data_root=CIFAR_N_DIR.parent)


def test_cifar10n_on_cifar100_is_refused(cifar100):
    with pytest.raises(BenchError, match="use --dataset cifar10 with --noise cifar10n:rand1"):
        check_noise_for_dataset("cifar10n:rand1", cifar100, data_root=CIFAR_N_DIR.parent)
