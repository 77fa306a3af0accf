"""CIFAR-10 and CIFAR-100, read from the python-pickle release (Krizhevsky, 2009).

A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", tech. report,
University of Toronto, 2009.  https://www.cs.toronto.edu/~kriz/cifar.html

Layout under the data root (what the official tarballs and torchvision's
``download=True`` produce)::

    cifar-10-batches-py/  data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/     train, test, meta

Each batch is a pickle (``encoding='bytes'`` on Python 3) of a dict with ``b'data'``,
a (N, 3072) uint8 array whose rows hold the red plane, then the green plane, then the
blue plane of a 32x32 image, each plane row-major; so ``reshape(N, 3, 32, 32)`` is
already channels-first.  The training order is data_batch_1..5 concatenated, the
order of torchvision's CIFAR10 and of the CIFAR-N label files (Wei et al., ICLR 2022),
which index images by that position.

The batches are pickles, which can name code to run; they are read as data only
(datasets/dataonly.py: dicts, lists, bytes, numbers and numeric numpy arrays, what the releases
hold), so a forged batch is refused in one line before anything in it runs.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from noisybench.core.errors import BenchError
from noisybench.datasets.dataonly import NotDataOnly, load_pickle_data_only
from noisybench.datasets.readers import DamagedDataError, damaged_error, missing_error, one_line, require_files
from noisybench.datasets.registry import Dataset, register_dataset

# Patrini et al., "Making deep neural networks robust to label noise: a loss correction
# approach", CVPR 2017 (github.com/giorgiop/loss-correction), used by JoCoR, DivideMix and ELR:
# truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog.
CIFAR10_ASYM_MAP: Mapping[int, int] = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

CIFAR100_NUM_BLOCKS = 20
CIFAR100_BLOCK_SIZE = 5


def cifar100_asym_map() -> dict[int, int]:
    """CIFAR-100's asymmetric map (Patrini et al. 2017, ``build_for_cifar100``).

    The 100 fine classes form 20 consecutive blocks of 5 indices; each class flips to the
    next index in its block, the last one back to the first (4 -> 0, 9 -> 5, ...).
    The blocks are index blocks, not the true superclasses: CIFAR-100's fine labels are
    in alphabetical order, so this is the published convention, not a semantic one.
    """
    size = CIFAR100_BLOCK_SIZE
    return {cls: (cls // size) * size + (cls % size + 1) % size for cls in range(CIFAR100_NUM_BLOCKS * size)}

# Patrini et al. (CVPR 2017) flip maps, kept with the other noise conventions.

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_META = "batches.meta"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

CIFAR100_DIR = "cifar-100-python"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"

IMAGE_SIZE = 32
PIXELS_PER_IMAGE = 3 * IMAGE_SIZE * IMAGE_SIZE  # 3072


def _how_to_get(root: Path, url: str) -> str:
    return f"pass --download, or get {url} and extract it into {root}"


def unpickle_batch(path: Path, dataset: str, how_to_get: str) -> dict:
    """One CIFAR pickle as a dict with bytes keys, read as data only; a truncated, foreign or forged
    file is a one-line error."""
    try:
        with open(path, "rb") as handle:
            content = load_pickle_data_only(handle, encoding="bytes")
    except FileNotFoundError:
        raise missing_error(dataset, path.parent, path.name, how_to_get) from None
    except NotDataOnly as err:
        raise DamagedDataError(f"{dataset} file {path} is not data only: it {err}; refused before anything in it "
                               f"ran; {how_to_get}") from None
    except Exception as err:  # noqa: BLE001  unpickling a damaged file raises almost anything
        raise damaged_error(dataset, path, f"not a readable pickle: {type(err).__name__}: {err}",
                            how_to_get) from None
    if not isinstance(content, dict):
        raise damaged_error(dataset, path, f"holds a {type(content).__name__}, expected a dict", how_to_get)
    return content


def _batch_images_labels(
    content: dict, label_key: bytes, num_classes: int, path: Path, dataset: str, how_to_get: str
) -> tuple[np.ndarray, np.ndarray]:
    for key in (b"data", label_key):
        if key not in content:
            raise damaged_error(dataset, path, f"no {key!r} entry", how_to_get)
    data = np.asarray(content[b"data"])
    labels = np.asarray(content[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS_PER_IMAGE:
        raise damaged_error(
            dataset, path, f"b'data' is {data.dtype} {data.shape}, expected uint8 (N, {PIXELS_PER_IMAGE})",
            how_to_get,
        )
    if labels.shape != (len(data),):
        raise damaged_error(dataset, path, f"{len(data)} images but {labels.size} labels", how_to_get)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise damaged_error(dataset, path, f"labels outside 0..{num_classes - 1}", how_to_get)
    # Rows are the R, G and B planes in turn, so this reshape is channels-first already.
    images = data.reshape(len(data), 3, IMAGE_SIZE, IMAGE_SIZE)
    return np.ascontiguousarray(images), labels


def _names(content: dict, key: bytes, expected: int, path: Path, dataset: str, how_to_get: str) -> tuple[str, ...]:
    if key not in content:
        raise damaged_error(dataset, path, f"no {key!r} entry", how_to_get)
    names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in content[key])
    if len(names) != expected:
        raise damaged_error(dataset, path, f"{len(names)} class names, expected {expected}", how_to_get)
    return names


def _download(torchvision_class_name: str, root: Path, dataset: str, url: str) -> None:
    """Fetch through torchvision (md5-checked, skipped when already present), read with our reader."""
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, torchvision_class_name)(str(root), train=True, download=True)
    except Exception as err:  # noqa: BLE001  urllib, ssl and md5 failures all mean the same here
        raise BenchError(
            f"could not download {dataset} into {root} ({one_line(err)}); "
            f"on a machine with internet get {url} and extract it into {root}"
        ) from None


@register_dataset("cifar10", "CIFAR-10 (Krizhevsky 2009): 50,000/10,000 32x32 RGB, 10 classes; --download",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_cifar10(root: Path, download: bool = False) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009): 50,000/10,000 32x32 RGB, 10 classes; --download."""
    root = Path(root)
    directory = root / CIFAR10_DIR
    how_to_get = _how_to_get(root, CIFAR10_URL)
    if download:
        _download("CIFAR10", root, "CIFAR-10", CIFAR10_URL)
    require_files("CIFAR-10", directory, [*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH, CIFAR10_META], how_to_get)

    parts = []
    for name in CIFAR10_TRAIN_BATCHES:  # this order is the CIFAR-N order: do not sort or shuffle
        path = directory / name
        parts.append(_batch_images_labels(
            unpickle_batch(path, "CIFAR-10", how_to_get), b"labels", 10, path, "CIFAR-10", how_to_get))
    train_images = np.concatenate([images for images, _ in parts])
    train_labels = np.concatenate([labels for _, labels in parts])
    test_path = directory / CIFAR10_TEST_BATCH
    test_images, test_labels = _batch_images_labels(
        unpickle_batch(test_path, "CIFAR-10", how_to_get), b"labels", 10, test_path, "CIFAR-10", how_to_get)
    meta_path = directory / CIFAR10_META
    class_names = _names(unpickle_batch(meta_path, "CIFAR-10", how_to_get), b"label_names", 10,
                         meta_path, "CIFAR-10", how_to_get)
    return Dataset(
        name="cifar10",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=class_names,
        asym_map=dict(CIFAR10_ASYM_MAP),
    )


@register_dataset("cifar100", "CIFAR-100 (Krizhevsky 2009): 50,000/10,000 32x32 RGB, 100 classes; --download",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_cifar100(root: Path, download: bool = False) -> Dataset:
    """CIFAR-100 (Krizhevsky 2009): 50,000/10,000 32x32 RGB, 100 classes; --download.

    The 20 coarse (superclass) labels ride along in ``extras`` (``train_coarse_labels``,
    ``test_coarse_labels``, ``coarse_class_names``) for the fine->coarse noise option and
    CIFAR-100N's coarse labels.
    """
    root = Path(root)
    directory = root / CIFAR100_DIR
    how_to_get = _how_to_get(root, CIFAR100_URL)
    if download:
        _download("CIFAR100", root, "CIFAR-100", CIFAR100_URL)
    require_files("CIFAR-100", directory, ["train", "test", "meta"], how_to_get)

    splits = {}
    for split in ("train", "test"):
        path = directory / split
        content = unpickle_batch(path, "CIFAR-100", how_to_get)
        images, fine = _batch_images_labels(content, b"fine_labels", 100, path, "CIFAR-100", how_to_get)
        _, coarse = _batch_images_labels(content, b"coarse_labels", 20, path, "CIFAR-100", how_to_get)
        splits[split] = (images, fine, coarse)
    meta_path = directory / "meta"
    meta = unpickle_batch(meta_path, "CIFAR-100", how_to_get)
    fine_names = _names(meta, b"fine_label_names", 100, meta_path, "CIFAR-100", how_to_get)
    coarse_names = _names(meta, b"coarse_label_names", 20, meta_path, "CIFAR-100", how_to_get)
    return Dataset(
        name="cifar100",
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        class_names=fine_names,
        asym_map=cifar100_asym_map(),
        extras={
            "train_coarse_labels": splits["train"][2],
            "test_coarse_labels": splits["test"][2],
            "coarse_class_names": coarse_names,
        },
    )
