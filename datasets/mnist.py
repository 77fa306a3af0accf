"""MNIST handwritten digits, read from the idx files (LeCun et al., 1998).

Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), 1998.  http://yann.lecun.com/exdb/mnist/

Layout under the data root: torchvision's, so that ``--download`` and a manual copy
land in the same place::

    MNIST/raw/  train-images-idx3-ubyte  train-labels-idx1-ubyte
                t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte     (each optionally .gz)

An idx file is a big-endian header -- magic number (2051 for images: type byte 0x08 =
unsigned byte, 3 dimensions; 2049 for labels: 0x08, 1 dimension), then one 32-bit
size per dimension -- followed by the values row-major.  Where both the plain file and
its .gz exist (torchvision keeps both), the plain one is read.
"""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from noisybench.core.errors import BenchError
from noisybench.datasets.readers import damaged_error, missing_error, one_line
from noisybench.datasets.registry import Dataset, register_dataset

# Patrini et al. (2017) for MNIST: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1.
MNIST_ASYM_MAP: Mapping[int, int] = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}

MNIST_DIR = Path("MNIST") / "raw"
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror


def _how_to_get(directory: Path) -> str:
    return f"pass --download, or get the four files from {MNIST_URL} into {directory}"


def find_idx_file(directory: Path, name: str) -> Path:
    """The plain file if present, else its .gz; a missing pair is a one-line error."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise missing_error("MNIST", directory, f"{name} (or {name}.gz)", _how_to_get(directory))


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An idx file of unsigned bytes as an array shaped by its header; checks magic and length."""
    how_to_get = _how_to_get(path.parent)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise damaged_error("MNIST", path, f"cannot read: {err}", how_to_get) from None
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise damaged_error("MNIST", path, f"{len(raw)} bytes, shorter than the {header_size}-byte header",
                            how_to_get)
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise damaged_error("MNIST", path, f"magic number {found}, expected {magic}", how_to_get)
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    payload = len(raw) - header_size
    if payload != expected:
        shape = "x".join(str(d) for d in dims)
        raise damaged_error("MNIST", path, f"{payload} data bytes, the header's {shape} needs {expected}",
                            how_to_get)
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) of one split, counts cross-checked."""
    images_name, labels_name = SPLIT_FILES[split]
    images_path = find_idx_file(directory, images_name)
    labels_path = find_idx_file(directory, labels_name)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    how_to_get = _how_to_get(directory)
    if len(images) != len(labels):
        raise damaged_error("MNIST", labels_path, f"{len(labels)} labels for {len(images)} images in "
                            f"{images_path.name}", how_to_get)
    if labels.size and labels.max() > 9:
        raise damaged_error("MNIST", labels_path, f"label {labels.max()} outside 0..9", how_to_get)
    return np.ascontiguousarray(images[:, None, :, :]), labels


@register_dataset("mnist", "MNIST (LeCun et al. 1998): 60,000/10,000 28x28 grayscale digits; --download")
def load_mnist(root: Path, download: bool = False) -> Dataset:
    """MNIST (LeCun et al. 1998): 60,000/10,000 28x28 grayscale digits; --download."""
    root = Path(root)
    directory = root / MNIST_DIR
    if download:
        import torchvision.datasets

        try:  # torchvision checks the .gz md5s, extracts next to them, skips what is present
            torchvision.datasets.MNIST(str(root), train=True, download=True)
        except Exception as err:  # noqa: BLE001  urllib/ssl/md5 failures all mean "no download"
            raise BenchError(
                f"could not download MNIST into {directory} ({one_line(err)}); "
                f"on a machine with internet get the four files from {MNIST_URL} into {directory}"
            ) from None
    train_images, train_labels = read_split(directory, "train")
    test_images, test_labels = read_split(directory, "test")
    return Dataset(
        name="mnist",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=tuple(str(d) for d in range(10)),
        asym_map=dict(MNIST_ASYM_MAP),  # Patrini et al. (2017): 2->7, 3->8, 5<->6, 7->1
    )
