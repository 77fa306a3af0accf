"""MNIST handwritten digits, read from the idx files (LeCun et al., 1998).

Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), 1998.  http://yann.lecun.com/exdb/mnist/

Layout under the data root: torchvision's, so that ``--download`` and a manual copy
land in the same place::

    MNIST/raw/  train-images-idx3-ubyte  train-labels-idx1-ubyte
                t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte     (each optionally .gz)

The format and the identity checks are in idx.py: Fashion-MNIST's files carry the same
names, and are refused here by their content.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from noisybench.datasets import idx
from noisybench.datasets.registry import Dataset, register_dataset

# Patrini et al. (2017) for MNIST: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1.
MNIST_ASYM_MAP: Mapping[int, int] = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}

MNIST_DIR = Path("MNIST") / "raw"
SPLIT_FILES = idx.SPLIT_FILES
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror

MNIST_LABEL_COUNTS = idx.MNIST.label_counts
RELEASE = idx.MNIST


def read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) of one MNIST split."""
    return idx.read_split(RELEASE, idx.others(RELEASE), directory, split)


def find_idx_file(directory: Path, name: str) -> Path:
    return idx.find_idx_file(RELEASE, directory, name)


@register_dataset("mnist", "MNIST (LeCun et al. 1998): 60,000/10,000 28x28 grayscale digits; --download",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_mnist(root: Path, download: bool = False) -> Dataset:
    """MNIST (LeCun et al. 1998): 60,000/10,000 28x28 grayscale digits; --download."""
    root = Path(root)
    directory = root / MNIST_DIR
    if download:
        idx.torchvision_download(root, "MNIST", RELEASE, MNIST_URL)
    # Patrini et al. (2017): 2->7, 3->8, 5<->6, 7->1
    return idx.load_release(RELEASE, directory, tuple(str(d) for d in range(10)), dict(MNIST_ASYM_MAP))
