"""What the noise code needs to know about a :class:`datasets.registry.Dataset`."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from noisybench.datasets.registry import Dataset


def training_size(dataset: "Dataset") -> int:
    """The number of training samples, i.e. of labels a noise kind must produce.

    Not simply ``len(train_images)``: datasets too large for memory (Clothing1M, Food-101N)
    stream their images and leave ``train_images`` empty, while their label arrays still
    hold one entry per training sample.
    """
    if dataset.train_labels is not None:
        return len(dataset.train_labels)
    if dataset.own_noisy_labels is not None:
        return len(dataset.own_noisy_labels)
    return dataset.num_train
