"""scikit-learn's bundled handwritten digits: the embedded default dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from noisybench.datasets.mnist import MNIST_ASYM_MAP
from noisybench.datasets.registry import Dataset, register_dataset

# A fixed split so that every trial, on every machine, sees the same test set.
SPLIT_SEED = 20240101
NUM_TEST = 540  # 1,797 images -> 1,257 train / 540 test (30%, stratified)

# The same ten glyphs as MNIST, so MNIST's asymmetric map (Patrini et al. 2017), defined once in mnist.py.
DIGITS_ASYM_MAP = MNIST_ASYM_MAP


def stratified_split(labels: np.ndarray, num_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with each class's share of the test set proportional to its size."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(
        idx, test_size=num_test, stratify=labels, random_state=seed, shuffle=True
    )
    return np.sort(train), np.sort(test)


@register_dataset("digits", "scikit-learn's bundled 8x8 handwritten digits (1,257 train / 540 test), no download",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_digits(root: Path, download: bool = False) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,257 train / 540 test), no download."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # Values 0..16 -> 0..255, so that every dataset enters the trainer as uint8 pixels.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    train, test = stratified_split(labels, NUM_TEST, SPLIT_SEED)
    return Dataset(
        name="digits",
        train_images=images[train],
        train_labels=labels[train],
        test_images=images[test],
        test_labels=labels[test],
        class_names=tuple(str(c) for c in range(10)),
        asym_map=dict(DIGITS_ASYM_MAP),
    )
