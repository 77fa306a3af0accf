"""ANIMAL-10N: 55,000 64x64 animal photos labelled by people, with real label noise.

H. Song, M. Kim, J.-G. Lee, "SELFIE: Refurbishing Unclean Samples for Robust Deep
Learning", ICML 2019.  Dataset page: https://dm.kaist.ac.kr/datasets/animal-10n/

Five pairs of look-alike animals were crawled and labelled by 15 students; the
training labels are those human labels (the authors estimate ~8% of them wrong) and
no clean training labels exist, so ``train_labels`` is None and the human labels are
``own_noisy_labels``.  The test set holds only images whose label matched the search
keyword, so its labels serve as clean.

Layout under the data root (unzip the "raw image" release there)::

    animal10n/training/<label>_<id>.jpg   50,000 files
    animal10n/testing/<label>_<id>.jpg     5,000 files

Every file is a 64x64 RGB JPEG whose name starts with its label 0..9.  Files are read
in sorted name order (the release has no canonical order; sorting makes sample indices
stable across machines and file systems) and decoded by a small thread pool into one
uint8 array: 55,000 x 3 x 64 x 64 bytes is about 675 MB.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from noisybench.datasets.readers import DamagedDataError, decode_images_fixed_size, missing_error
from noisybench.datasets.registry import Dataset, register_dataset

ANIMAL10N_DIR = "animal10n"
ANIMAL10N_URL = "https://dm.kaist.ac.kr/datasets/animal-10n/"
IMAGE_SIZE = 64
# The label table of the dataset page, index = label.  (A third-party loader claims
# labels 4 and 5 are swapped on that page; names are only for display, so the
# page's order stands until the authors say otherwise.)
ANIMAL10N_CLASSES = (
    "cat", "lynx", "wolf", "coyote", "cheetah", "jaguar", "chimpanzee", "orangutan", "hamster", "guinea pig",
)
# Song et al. (ICML 2019) estimate the noise rate of the human labels at about 8%.
ANIMAL10N_NOISE_RATE = 0.08


def _how_to_get(root: Path) -> str:
    return (f"there is no automatic download: get the raw-image release from {ANIMAL10N_URL} and unzip it so that "
            f"{root / ANIMAL10N_DIR}/training and /testing hold the <label>_<id>.jpg files")


def list_labelled_jpegs(directory: Path, how_to_get: str) -> tuple[list[Path], np.ndarray]:
    """Sorted ``<label>_<id>.jpg`` paths of one split and the labels their names carry."""
    if not directory.is_dir():
        raise missing_error("ANIMAL-10N", directory.parent, f"a folder {directory.name}/ of "
                            "<label>_<id>.jpg files", how_to_get)
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise missing_error("ANIMAL-10N", directory, "<label>_<id>.jpg files", how_to_get)
    labels = np.empty(len(paths), dtype=np.int64)
    for position, path in enumerate(paths):
        prefix = path.name.split("_", 1)[0]
        if "_" not in path.name or not prefix.isdigit() or int(prefix) >= len(ANIMAL10N_CLASSES):
            raise DamagedDataError(
                f"ANIMAL-10N file name {path} does not start with a label 0..9 and '_' "
                f"(expected <label>_<id>.jpg); {how_to_get}"
            )
        labels[position] = int(prefix)
    return paths, labels


@register_dataset("animal10n", "ANIMAL-10N (Song et al., ICML 2019): 50,000/5,000 64x64 RGB, 10 classes, ~8% real noise",
                  rule_version=1, rule_history={1: "noisybench 0.2.0: images, labels, order and split as released"})
def load_animal10n(root: Path, download: bool = False) -> Dataset:
    """ANIMAL-10N (Song et al., ICML 2019): 50,000/5,000 64x64 RGB, 10 classes, ~8% real noise."""
    root = Path(root)
    how_to_get = _how_to_get(root)  # `download` cannot help here; the missing-file error says so
    base = root / ANIMAL10N_DIR
    train_paths, train_human_labels = list_labelled_jpegs(base / "training", how_to_get)
    test_paths, test_labels = list_labelled_jpegs(base / "testing", how_to_get)
    train_images = decode_images_fixed_size(train_paths, IMAGE_SIZE, IMAGE_SIZE, "ANIMAL-10N", how_to_get)
    test_images = decode_images_fixed_size(test_paths, IMAGE_SIZE, IMAGE_SIZE, "ANIMAL-10N", how_to_get)
    return Dataset(
        name="animal10n",
        train_images=train_images,
        train_labels=None,  # only the human (noisy) labels exist for training images
        test_images=test_images,
        test_labels=test_labels,
        class_names=ANIMAL10N_CLASSES,
        asym_map=None,
        own_noisy_labels=train_human_labels,
        own_noise_rate=ANIMAL10N_NOISE_RATE,
        extras={"train_files": tuple(p.name for p in train_paths)},
    )
