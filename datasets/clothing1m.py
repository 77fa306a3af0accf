"""Clothing1M: one million clothing photos from shopping sites, labelled by their
surrounding text, 14 classes (Xiao et al., CVPR 2015).

T. Xiao, T. Xia, Y. Yang, C. Huang, X. Wang, "Learning from Massive Noisy Labeled Data
for Image Classification", CVPR 2015.  https://github.com/Cysu/noisy_label (access to
the data is granted by the authors on request).

Layout under the data root (the authors' release, image tarballs extracted in place)::

    clothing1m/images/0/00/<name>.jpg ...           the JPEGs, any size
    clothing1m/noisy_label_kv.txt                   `images/... <label>` per line, ~1M
    clothing1m/clean_label_kv.txt                   `images/... <label>` per line, ~72k
    clothing1m/noisy_train_key_list.txt             `images/...` per line, 1,000,000
    clothing1m/clean_train_key_list.txt             47,570
    clothing1m/clean_val_key_list.txt               14,313
    clothing1m/clean_test_key_list.txt              10,526

The six text files may also sit in ``clothing1m/annotations/`` (the layout MLNT's
loader expects).  Paths in them are relative to ``clothing1m/``.

What the loader builds (the common protocol, DivideMix / ELR):
- training list = noisy_train_key_list, labels from noisy_label_kv -> ``own_noisy_labels``;
  ``train_labels`` is None.  Xiao et al. measured the noisy labels' accuracy at 61.54% on
  the images that have both labels, so ``own_noise_rate`` = 0.3846.
- ``train_stream``: per epoch a class-balanced subsample of 32,000 (DivideMix's 1000
  batches x 32, at most 32,000/14 per noisy class), resize 256, random crop 224, flip.
- test = clean_test_key_list with clean_label_kv labels -> ``test_labels`` + ``test_stream``
  (resize 256, centre crop 224); ``train_images``/``test_images`` are empty (0, 3, 224, 224).
- ``extras``: ``val_stream``/``val_labels`` (clean_val, for model selection as DivideMix
  does) and ``train_clean_labels_where_known`` (int64, -1 where the image has no clean
  label) for label-precision diagnostics on the overlap.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from noisybench.datasets.readers import damaged_error, missing_error, read_lines, require_files
from noisybench.datasets.registry import Dataset, register_dataset
from noisybench.datasets.streaming import CROP_SIZE, DIVIDEMIX_CLOTHING1M_EPOCH_SIZE, JpegStream

CLOTHING1M_DIR = "clothing1m"
CLOTHING1M_URL = "https://github.com/Cysu/noisy_label"
LABEL_FILES = ("noisy_label_kv.txt", "clean_label_kv.txt")
KEY_FILES = (
    "noisy_train_key_list.txt", "clean_train_key_list.txt", "clean_val_key_list.txt", "clean_test_key_list.txt",
)
# Index = label, in the order of the release's category_names_eng.txt.
CLOTHING1M_CLASSES = (
    "T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker",
    "Jacket", "Down Coat", "Suit", "Shawl", "Dress", "Vest", "Underwear",
)
# Xiao et al. (2015) report the noisy labels 61.54% accurate (on images with both labels).
CLOTHING1M_NOISE_RATE = 0.3846


def _how_to_get(base: Path) -> str:
    return (f"request Clothing1M from its authors ({CLOTHING1M_URL}), extract images/ into {base} "
            f"and put the six .txt label/key files next to it (or in {base / 'annotations'})")


def find_annotation_dir(base: Path) -> Path:
    """``clothing1m/`` itself, or ``clothing1m/annotations/``: whichever holds the label files."""
    for candidate in (base, base / "annotations"):
        if (candidate / LABEL_FILES[0]).is_file():
            return candidate
    return base  # require_files then names what is missing there


def read_key_labels(path: Path, num_classes: int, how_to_get: str) -> tuple[np.ndarray, np.ndarray]:
    """A `key label` file as (keys sorted as bytes, labels in the same order).

    Where a key appears twice the later line wins, as in the dict every public loader
    builds from these files.
    """
    keys, labels = [], []
    for number, line in enumerate(read_lines(path, "Clothing1M", how_to_get), start=1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) >= num_classes:
            raise damaged_error("Clothing1M", path, f"line {number} is {line[:80]!r}, expected "
                                f"'<path> <label 0..{num_classes - 1}>'", how_to_get)
        keys.append(fields[0].encode("utf-8"))
        labels.append(int(fields[1]))
    key_array = np.array(keys, dtype=np.bytes_)
    order = np.argsort(key_array, kind="stable")  # stable: the later duplicate sorts last
    return key_array[order], np.array(labels, dtype=np.int64)[order]


def lookup_labels(sorted_keys: np.ndarray, sorted_labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Label of each query key (the last entry for a duplicated key); -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    position = np.searchsorted(sorted_keys, queries, side="right") - 1
    found = (position >= 0) & (sorted_keys[np.maximum(position, 0)] == queries)
    return np.where(found, sorted_labels[np.maximum(position, 0)], -1)


def read_key_list(path: Path, how_to_get: str) -> np.ndarray:
    return np.array([line.strip().encode("utf-8") for line in read_lines(path, "Clothing1M", how_to_get)],
                    dtype=np.bytes_)


def labelled_keys(
    annotations: Path, key_file: str, label_file: str, labels_by_key: tuple[np.ndarray, np.ndarray],
    how_to_get: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The keys of ``key_file`` and their labels from ``label_file``; every key must have one."""
    keys = read_key_list(annotations / key_file, how_to_get)
    labels = lookup_labels(*labels_by_key, keys)
    missing = np.flatnonzero(labels < 0)
    if missing.size:
        first = keys[missing[0]].decode("utf-8", "replace")
        raise damaged_error("Clothing1M", annotations / key_file, f"{missing.size} keys have no label in "
                            f"{label_file}, the first {first}", how_to_get)
    return keys, labels


def _check_first_image(stream: JpegStream, how_to_get: str) -> None:
    """One stat per list catches a wrong layout now rather than hours into a run."""
    if stream.num_images and not stream.path(0).is_file():
        raise missing_error("Clothing1M", stream.path(0).parent, f"{stream.path(0).name} (listed first in "
                            "the key file)", how_to_get)


@register_dataset("clothing1m", "Clothing1M (Xiao et al., CVPR 2015): 1M noisy / 10,526 clean test, 14 classes, streamed",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_clothing1m(root: Path, download: bool = False) -> Dataset:
    """Clothing1M (Xiao et al., CVPR 2015): 1M noisy / 10,526 clean test, 14 classes, streamed."""
    base = Path(root) / CLOTHING1M_DIR
    how_to_get = _how_to_get(base)  # no automatic download exists: `download` changes nothing
    annotations = find_annotation_dir(base)
    require_files("Clothing1M", annotations, [*LABEL_FILES, *KEY_FILES], how_to_get)
    num_classes = len(CLOTHING1M_CLASSES)
    noisy_by_key = read_key_labels(annotations / "noisy_label_kv.txt", num_classes, how_to_get)
    clean_by_key = read_key_labels(annotations / "clean_label_kv.txt", num_classes, how_to_get)

    train_keys, noisy_labels = labelled_keys(
        annotations, "noisy_train_key_list.txt", "noisy_label_kv.txt", noisy_by_key, how_to_get)
    test_keys, test_labels = labelled_keys(
        annotations, "clean_test_key_list.txt", "clean_label_kv.txt", clean_by_key, how_to_get)
    val_keys, val_labels = labelled_keys(
        annotations, "clean_val_key_list.txt", "clean_label_kv.txt", clean_by_key, how_to_get)

    def stream(keys: np.ndarray, labels: np.ndarray, training: bool) -> JpegStream:
        return JpegStream(
            image_root=base,
            relative_paths=keys,
            labels=labels,
            num_classes=num_classes,
            augment=training,
            shuffle=training,
            epoch_size=DIVIDEMIX_CLOTHING1M_EPOCH_SIZE if training else None,
            dataset="Clothing1M",
            how_to_get=how_to_get,
        )

    train_stream = stream(train_keys, noisy_labels, training=True)
    test_stream = stream(test_keys, test_labels, training=False)
    val_stream = stream(val_keys, val_labels, training=False)
    for each in (train_stream, test_stream):
        _check_first_image(each, how_to_get)
    empty = np.empty((0, 3, CROP_SIZE, CROP_SIZE), dtype=np.uint8)
    return Dataset(
        name="clothing1m",
        train_images=empty,
        train_labels=None,
        test_images=empty,
        test_labels=test_labels,
        class_names=CLOTHING1M_CLASSES,
        asym_map=None,
        own_noisy_labels=noisy_labels,
        own_noise_rate=CLOTHING1M_NOISE_RATE,
        extras={
            "val_stream": val_stream,
            "val_labels": val_labels,
            "train_clean_labels_where_known": lookup_labels(*clean_by_key, train_keys),
        },
        train_stream=train_stream,
        test_stream=test_stream,
    )
