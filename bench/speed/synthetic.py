"""A synthetic dataset of a real one's shape: step time does not depend on pixel values or labels.

Built in memory and never registered, so `bench run` cannot pick it.
"""
from __future__ import annotations

import numpy as np

from noisybench.bench.speed.options import (
    CIFAR_IMAGE_SHAPE,
    CIFAR_TEST_SIZE,
    CIFAR_TRAIN_SIZE,
    SHAPES,
)


def synthetic_dataset(shape: str = "cifar10", train_size: int = CIFAR_TRAIN_SIZE,
                      test_size: int = CIFAR_TEST_SIZE, seed: int = 0):
    """Uniform random uint8 images and labels with the shape of ``shape``'s dataset, in memory."""
    from noisybench.datasets.registry import Dataset

    num_classes = SHAPES[shape]
    rng = np.random.default_rng(seed)
    return Dataset(
        name=f"synthetic-{shape}",
        train_images=rng.integers(0, 256, size=(train_size, *CIFAR_IMAGE_SHAPE), dtype=np.uint8),
        train_labels=rng.integers(0, num_classes, size=train_size).astype(np.int64),
        test_images=rng.integers(0, 256, size=(test_size, *CIFAR_IMAGE_SHAPE), dtype=np.uint8),
        test_labels=rng.integers(0, num_classes, size=test_size).astype(np.int64),
        class_names=tuple(f"class{i}" for i in range(num_classes)),
    )
