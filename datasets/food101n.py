"""Food-101N: 310k web food images with their search-query labels, evaluated on
Food-101's test split (Lee et al., CVPR 2018).

K.-H. Lee, X. He, L. Zhang, L. Yang, "CleanNet: Transfer Learning for Scalable Image
Classifier Training with Label Noise", CVPR 2018.  https://kuanghuei.github.io/Food-101N/
Test set: L. Bossard, M. Guillaumin, L. Van Gool, "Food-101 -- Mining Discriminative
Components with Random Forests", ECCV 2014.

Layout under the data root (both archives extracted there as released)::

    Food-101N_release/images/<class_name>/<key>.jpg
    Food-101N_release/meta/classes.txt          header `class_name`, then the 101 names
    Food-101N_release/meta/imagelist.tsv        header `class_name/key`, then `<class>/<key>.jpg`
    Food-101N_release/meta/verified_train.tsv   header `class_name/key<TAB>verification_label`,
    Food-101N_release/meta/verified_val.tsv       then `<class>/<key>.jpg<TAB>0|1`
    food-101/images/<class_name>/<id>.jpg
    food-101/meta/test.txt                      `<class>/<id>` per line (no extension), 25,250

What the loader builds:
- training list = imagelist.tsv in file order; label = the class folder's index in
  Food-101N's classes.txt (its header line is skipped; counting it shifts every label)
  -> ``own_noisy_labels``; ``train_labels`` is None.  Lee et al. estimate about 20% of
  these labels wrong -> ``own_noise_rate`` = 0.20.
- ``train_stream``: the whole list in a fresh order every epoch (CleanNet's setting;
  no class-balanced subsample -- ``train_stream.replace(epoch_size=N)`` makes one),
  resize 256, random crop 224, flip.
- test = Food-101's test.txt -> ``test_labels`` + ``test_stream`` (resize 256, centre crop).
- ``extras["verification_labels"]``: int8 per training image, 1/0 where a person verified
  the label right/wrong (verified_train + verified_val), -1 elsewhere;
  ``extras["verified_val_mask"]`` marks the verified_val rows (CleanNet's validation set);
  ``extras["verified_keys_not_in_imagelist"]`` counts verification rows naming no
  imagelist entry (a third-party loader reports a key filed under one class in
  imagelist.tsv and another in verified_train.tsv).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from noisybench.datasets.readers import damaged_error, missing_error, read_lines, require_files
from noisybench.datasets.registry import Dataset, register_dataset
from noisybench.datasets.streaming import CROP_SIZE, JpegStream

FOOD101N_DIR = "Food-101N_release"
FOOD101_DIR = "food-101"
FOOD101N_URL = "https://kuanghuei.github.io/Food-101N/"
FOOD101_URL = "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"
META_FILES = ("classes.txt", "imagelist.tsv", "verified_train.tsv", "verified_val.tsv")
# Lee et al. (CVPR 2018) estimate the noise level of Food-101N's labels at about 20%.
FOOD101N_NOISE_RATE = 0.20


def _how_to_get(root: Path) -> str:
    return (f"get Food-101N from {FOOD101N_URL} and Food-101 from {FOOD101_URL} and extract both into {root} "
            f"(giving {root / FOOD101N_DIR} and {root / FOOD101_DIR})")


def read_class_names(path: Path, how_to_get: str) -> tuple[str, ...]:
    names = [line.strip() for line in read_lines(path, "Food-101N", how_to_get)]
    if names and names[0] == "class_name":  # Food-101N's header; Food-101's copy has none
        names = names[1:]
    if len(set(names)) != len(names) or not names:
        raise damaged_error("Food-101N", path, f"{len(names)} class names with repeats or none", how_to_get)
    return tuple(names)


def _class_indices(keys: list[str], class_index: dict[str, int], path: Path, how_to_get: str) -> np.ndarray:
    labels = np.empty(len(keys), dtype=np.int64)
    for position, key in enumerate(keys):
        class_name = key.split("/", 1)[0]
        if "/" not in key or class_name not in class_index:
            raise damaged_error("Food-101N", path, f"entry {key!r} is not <class_name>/<file> with a class "
                                "from classes.txt", how_to_get)
        labels[position] = class_index[class_name]
    return labels


def read_verification(
    path: Path, position_by_key: dict[str, int], how_to_get: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(positions in the image list, 0/1 verification labels, rows naming no listed image)."""
    lines = read_lines(path, "Food-101N", how_to_get)
    if not lines or not lines[0].startswith("class_name/key"):
        raise damaged_error("Food-101N", path, "first line is not the header "
                            "'class_name/key<TAB>verification_label'", how_to_get)
    positions, flags, unmatched = [], [], 0
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2 or fields[1].strip() not in ("0", "1"):
            raise damaged_error("Food-101N", path, f"line {number} is {line[:80]!r}, expected "
                                "'<class>/<key>.jpg<TAB>0|1'", how_to_get)
        position = position_by_key.get(fields[0].strip())
        if position is None:
            unmatched += 1
            continue
        positions.append(position)
        flags.append(int(fields[1]))
    return np.array(positions, dtype=np.int64), np.array(flags, dtype=np.int8), unmatched


@register_dataset("food101n", "Food-101N (Lee et al., CVPR 2018): 310k noisy web images, Food-101 test, 101 classes, streamed",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_food101n(root: Path, download: bool = False) -> Dataset:
    """Food-101N (Lee et al., CVPR 2018): 310k noisy web images, Food-101 test, 101 classes, streamed."""
    root = Path(root)
    how_to_get = _how_to_get(root)  # no automatic download exists: `download` changes nothing
    noisy_base, test_base = root / FOOD101N_DIR, root / FOOD101_DIR
    require_files("Food-101N", noisy_base / "meta", META_FILES, how_to_get)
    require_files("Food-101", test_base / "meta", ["test.txt"], how_to_get)
    for images in (noisy_base / "images", test_base / "images"):
        if not images.is_dir():
            raise missing_error("Food-101N", images.parent, "images/<class_name>/*.jpg", how_to_get)

    class_names = read_class_names(noisy_base / "meta" / "classes.txt", how_to_get)
    class_index = {name: i for i, name in enumerate(class_names)}

    imagelist_path = noisy_base / "meta" / "imagelist.tsv"
    lines = read_lines(imagelist_path, "Food-101N", how_to_get)
    if not lines or lines[0].strip() != "class_name/key":
        raise damaged_error("Food-101N", imagelist_path, "first line is not the header 'class_name/key'",
                            how_to_get)
    train_keys = [line.strip() for line in lines[1:]]
    noisy_labels = _class_indices(train_keys, class_index, imagelist_path, how_to_get)
    position_by_key = {key: i for i, key in enumerate(train_keys)}

    verification = np.full(len(train_keys), -1, dtype=np.int8)
    verified_val_mask = np.zeros(len(train_keys), dtype=bool)
    unmatched_total = 0
    for name in ("verified_train.tsv", "verified_val.tsv"):
        positions, flags, unmatched = read_verification(noisy_base / "meta" / name, position_by_key, how_to_get)
        verification[positions] = flags
        if name == "verified_val.tsv":
            verified_val_mask[positions] = True
        unmatched_total += unmatched

    test_list_path = test_base / "meta" / "test.txt"
    test_ids = [line.strip() for line in read_lines(test_list_path, "Food-101", how_to_get)]
    test_labels = _class_indices(test_ids, class_index, test_list_path, how_to_get)

    common = dict(num_classes=len(class_names), dataset="Food-101N", how_to_get=how_to_get)
    train_stream = JpegStream(
        image_root=noisy_base / "images",
        relative_paths=np.array([k.encode("utf-8") for k in train_keys], dtype=np.bytes_),
        labels=noisy_labels, augment=True, shuffle=True, epoch_size=None, **common,
    )
    test_stream = JpegStream(
        image_root=test_base / "images",
        relative_paths=np.array([f"{i}.jpg".encode("utf-8") for i in test_ids], dtype=np.bytes_),
        labels=test_labels, augment=False, shuffle=False, epoch_size=None, **common,
    )
    for stream in (train_stream, test_stream):  # one stat each: a wrong layout fails now, not mid-run
        if stream.num_images and not stream.path(0).is_file():
            raise missing_error("Food-101N", stream.path(0).parent, f"{stream.path(0).name} (listed first)",
                                how_to_get)
    empty = np.empty((0, 3, CROP_SIZE, CROP_SIZE), dtype=np.uint8)
    return Dataset(
        name="food101n",
        train_images=empty,
        train_labels=None,
        test_images=empty,
        test_labels=test_labels,
        class_names=class_names,
        asym_map=None,
        own_noisy_labels=noisy_labels,
        own_noise_rate=FOOD101N_NOISE_RATE,
        extras={
            "verification_labels": verification,
            "verified_val_mask": verified_val_mask,
            "verified_keys_not_in_imagelist": unmatched_total,
        },
        train_stream=train_stream,
        test_stream=test_stream,
    )
