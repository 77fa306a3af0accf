"""Fashion-MNIST: Zalando's article images, read from the idx files (Xiao, Rasul & Vollgraf, 2017).

H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
Machine Learning Algorithms", arXiv:1708.07747, 2017.  github.com/zalandoresearch/fashion-mnist

60,000 training and 10,000 test 28x28 grayscale images, 6,000 and 1,000 per class, in MNIST's
file format and under MNIST's file names.  Looked for, in this order:

1. the data root in torchvision's layout: ``<data root>/FashionMNIST/raw/`` (the four files,
   each optionally .gz), where ``--download`` puts them;
2. Debian's package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist/``
   (``apt-get install dataset-fashion-mnist``, or ``make data``);
3. ``--download`` (torchvision's mirror), when neither holds them.

Every file is identified by the sha256 of its decompressed content (idx.py), so a re-gzipped
copy such as Debian's passes and MNIST's files under this name are refused.
"""
from __future__ import annotations

from pathlib import Path

from noisybench.datasets import idx
from noisybench.datasets.readers import MissingDataError
from noisybench.datasets.registry import Dataset, register_dataset

FASHION_MNIST_DIR = Path("FashionMNIST") / "raw"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # torchvision's mirror

# The label order of the release (zalandoresearch/fashion-mnist README, "Labels").
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")

RELEASE = idx.FASHION_MNIST


def has_files(directory: Path) -> bool:
    """Whether ``directory`` holds all four files (plain or .gz): the place to read from."""
    return all((directory / name).is_file() or (directory / f"{name}.gz").is_file()
               for names in idx.SPLIT_FILES.values() for name in names)


def find_directory(root: Path, debian_dir: Path | None = None) -> Path:
    """The first place holding the four files: the data root's FashionMNIST/raw, then Debian's."""
    debian_dir = DEBIAN_DIR if debian_dir is None else debian_dir
    for directory in (root / FASHION_MNIST_DIR, debian_dir):
        if has_files(directory):
            return directory
    raise MissingDataError(
        f"Fashion-MNIST not found: expected train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz) in {root / FASHION_MNIST_DIR} "
        f"or {debian_dir}; apt-get install dataset-fashion-mnist (or make data), or pass --download")


def read_split(directory: Path, split: str):
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) of one Fashion-MNIST split."""
    return idx.read_split(RELEASE, idx.others(RELEASE), directory, split)


@register_dataset("fashion-mnist", "Fashion-MNIST (Xiao et al. 2017): 60,000/10,000 28x28 grayscale articles; "
                                   "data root, Debian's dataset-fashion-mnist, or --download",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_fashion_mnist(root: Path, download: bool = False) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): 60,000/10,000 28x28 grayscale articles."""
    root = Path(root)
    if download and not has_files(root / FASHION_MNIST_DIR) and not has_files(DEBIAN_DIR):
        idx.torchvision_download(root, "FashionMNIST", RELEASE, FASHION_MNIST_URL)
    directory = find_directory(root)
    # No asym_map: no published class map for Fashion-MNIST's asym noise (noise/README.md).
    return idx.load_release(RELEASE, directory, CLASS_NAMES)
