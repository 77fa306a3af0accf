"""``bench data check``: which datasets under a data root are present and intact.

Where published checksums exist they are used: the md5 of every CIFAR file (the lists
torchvision checks after download, ``CIFAR10.train_list`` etc.) and of MNIST's four .gz
files (``MNIST.resources``; torchvision only checks that the decompressed files exist,
so those get a header-and-count check instead).  The web-scale datasets have no
published checksums and are large, so they get cheap checks: the expected files and
folders exist, the lists have the published number of entries, the file names parse.
Nothing here decodes images or loads a dataset.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from noisybench.datasets import animal10n, cifar, clothing1m, food101n, mnist
from noisybench.datasets.readers import DamagedDataError, MissingDataError, missing_error, require_files

OK, MISSING, DAMAGED = "ok", "missing", "damaged"

# Published sizes, each with its source.
MNIST_COUNTS = {"train": 60_000, "test": 10_000}  # LeCun et al. (1998)
ANIMAL10N_COUNTS = {"training": 50_000, "testing": 5_000}  # Song et al. (ICML 2019)
CLOTHING1M_KEY_COUNTS = {  # Xiao et al. (CVPR 2015): 1M noisy training images; clean splits
    "noisy_train_key_list.txt": 1_000_000,
    "clean_train_key_list.txt": 47_570,
    "clean_val_key_list.txt": 14_313,
    "clean_test_key_list.txt": 10_526,
}
FOOD101N_IMAGES = 310_009  # Lee et al. (CVPR 2018), Food-101N page: 310,009 images
FOOD101_TEST_IMAGES = 25_250  # Bossard et al. (ECCV 2014): 250 test images x 101 classes


def file_md5(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def count_lines(path: Path) -> int:
    """Non-blank lines, counted in bytes so that a 1M-line key list takes a fraction of a second."""
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _md5_mismatches(directory: Path, expected: list[tuple[str, str]]) -> list[str]:
    return [f"{name} md5 {found} != {md5}" for name, md5 in expected
            if (found := file_md5(directory / name)) != md5]


def _check_cifar_release(title: str, torchvision_class: str, subdir: str, url: str, root: Path) -> str:
    """Every file of a CIFAR python release present, with the md5s torchvision checks."""
    import torchvision.datasets as tv

    release = getattr(tv, torchvision_class)
    directory = root / subdir
    expected = [*release.train_list, *release.test_list, [release.meta["filename"], release.meta["md5"]]]
    require_files(title, directory, [name for name, _ in expected], cifar._how_to_get(root, url))
    bad = _md5_mismatches(directory, expected)
    if bad:
        raise DamagedDataError(f"{directory}: {'; '.join(bad)}")
    return f"{directory}: {len(expected)} files, md5 match torchvision's list"


def check_cifar10(root: Path) -> str:
    return _check_cifar_release("CIFAR-10", "CIFAR10", cifar.CIFAR10_DIR, cifar.CIFAR10_URL, root)


def check_cifar100(root: Path) -> str:
    return _check_cifar_release("CIFAR-100", "CIFAR100", cifar.CIFAR100_DIR, cifar.CIFAR100_URL, root)


def check_mnist(root: Path) -> str:
    import torchvision.datasets as tv

    directory = root / mnist.MNIST_DIR
    md5_by_gz = dict(tv.MNIST.resources)
    notes = []
    for split, names in mnist.SPLIT_FILES.items():
        images_path = mnist.find_idx_file(directory, names[0])
        mnist.find_idx_file(directory, names[1])
        for name in names:
            gz = directory / f"{name}.gz"
            if gz.is_file() and (found := file_md5(gz)) != md5_by_gz[gz.name]:
                raise DamagedDataError(f"{gz}: md5 {found} != {md5_by_gz[gz.name]} (torchvision's list)")
        images, _ = mnist.read_split(directory, split)  # magic, header sizes, image/label counts
        if len(images) != MNIST_COUNTS[split]:
            raise DamagedDataError(f"{images_path}: {len(images)} images, MNIST's {split} split has "
                                   f"{MNIST_COUNTS[split]}")
        notes.append(f"{split} {len(images):,}")
    gz_count = sum((directory / name).is_file() for name in md5_by_gz)
    return (f"{directory}: {', '.join(notes)} images, headers valid; "
            f"{gz_count} of 4 .gz files present and md5-checked")


def check_animal10n(root: Path) -> str:
    base = root / animal10n.ANIMAL10N_DIR
    how_to_get = animal10n._how_to_get(root)
    counts = []
    for split, expected in ANIMAL10N_COUNTS.items():
        paths, _ = animal10n.list_labelled_jpegs(base / split, how_to_get)  # names parse as <label>_<id>
        if len(paths) != expected:
            raise DamagedDataError(f"{base / split}: {len(paths):,} JPEGs, expected {expected:,}")
        counts.append(f"{split} {len(paths):,}")
    return f"{base}: {', '.join(counts)} JPEGs with <label>_<id> names (not decoded)"


def check_clothing1m(root: Path) -> str:
    base = root / clothing1m.CLOTHING1M_DIR
    how_to_get = clothing1m._how_to_get(base)
    annotations = clothing1m.find_annotation_dir(base)
    require_files("Clothing1M", annotations, [*clothing1m.LABEL_FILES, *clothing1m.KEY_FILES], how_to_get)
    if not (base / "images").is_dir():
        raise missing_error("Clothing1M", base, "images/", how_to_get)
    for name, expected in CLOTHING1M_KEY_COUNTS.items():
        found = count_lines(annotations / name)
        if found != expected:
            raise DamagedDataError(f"{annotations / name}: {found:,} keys, expected {expected:,}")
    labelled = {name: count_lines(annotations / name) for name in clothing1m.LABEL_FILES}
    return (f"{base}: key lists have the published sizes; "
            + ", ".join(f"{name} {n:,} lines" for name, n in labelled.items()) + " (images not opened)")


def check_food101n(root: Path) -> str:
    noisy_base, test_base = root / food101n.FOOD101N_DIR, root / food101n.FOOD101_DIR
    how_to_get = food101n._how_to_get(root)
    require_files("Food-101N", noisy_base / "meta", food101n.META_FILES, how_to_get)
    require_files("Food-101", test_base / "meta", ["test.txt"], how_to_get)
    for images in (noisy_base / "images", test_base / "images"):
        if not images.is_dir():
            raise missing_error("Food-101N", images.parent, "images/", how_to_get)
    listed = count_lines(noisy_base / "meta" / "imagelist.tsv") - 1  # minus the header
    if listed != FOOD101N_IMAGES:
        raise DamagedDataError(f"{noisy_base / 'meta' / 'imagelist.tsv'}: {listed:,} images, expected "
                               f"{FOOD101N_IMAGES:,}")
    tests = count_lines(test_base / "meta" / "test.txt")
    if tests != FOOD101_TEST_IMAGES:
        raise DamagedDataError(f"{test_base / 'meta' / 'test.txt'}: {tests:,} images, expected "
                               f"{FOOD101_TEST_IMAGES:,}")
    return f"{root}: imagelist {listed:,}, Food-101 test {tests:,} (images not opened)"


CHECKS: dict[str, Callable[[Path], str]] = {
    "digits": lambda root: "bundled with scikit-learn, needs no files",
    "cifar10": check_cifar10,
    "cifar100": check_cifar100,
    "mnist": check_mnist,
    "animal10n": check_animal10n,
    "clothing1m": check_clothing1m,
    "food101n": check_food101n,
}


def check_datasets(root: str | Path) -> list[tuple[str, str, str]]:
    """``(name, status, detail)`` per dataset, status "ok", "missing" or "damaged"."""
    root = Path(root)
    report = []
    for name, check in CHECKS.items():
        try:
            report.append((name, OK, check(root)))
        except MissingDataError as err:
            report.append((name, MISSING, str(err)))
        except (DamagedDataError, OSError) as err:
            report.append((name, DAMAGED, " ".join(str(err).split())))
    return report
