"""``bench data check``: which datasets under a data root are present and intact.

Where published checksums exist they are used: the md5 of every CIFAR file (the lists
torchvision checks after download, ``CIFAR10.train_list`` etc.) and of MNIST's four .gz
files (``MNIST.resources``; torchvision only checks that the decompressed files exist,
so those get a header-and-count check instead).  MNIST and Fashion-MNIST are identified by
their decompressed content (datasets/idx.py), so a re-gzipped copy is not called damaged.  The web-scale datasets have no
published checksums and are large, so they get cheap checks: the expected files and
folders exist, the lists have the published number of entries, the file names parse.
Nothing here decodes images or loads a dataset.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

from noisybench.datasets import animal10n, cifar, clothing1m, fashion_mnist, food101n, idx, mnist
from noisybench.datasets.readers import DamagedDataError, MissingDataError, missing_error, require_files

OK, MISSING, DAMAGED = "ok", "missing", "damaged"

# Published sizes, each with its source.
MNIST_COUNTS = {"train": 60_000, "test": 10_000}  # LeCun et al. (1998)
FASHION_MNIST_COUNTS = {"train": 60_000, "test": 10_000}  # Xiao et al. (2017)
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


def _check_idx_release(release, directory: Path, read_split, counts: dict[str, int]) -> str:
    """The four idx files read and identified (idx.py: another release's files are refused, a
    known content digest must match), the split sizes the release's, and each original .gz's md5.

    A .gz whose md5 differs from the release's is not damaged by itself: a re-gzipped copy
    (Debian's) has other bytes around the same content, which the loader has already checked.
    """
    notes = []
    for split, names in idx.SPLIT_FILES.items():
        images, _ = read_split(directory, split)  # identity, magic, header sizes, image/label counts
        if len(images) != counts[split]:
            images_path = idx.find_idx_file(release, directory, names[0])
            raise DamagedDataError(f"{images_path}: {len(images)} images, {release.title}'s {split} split has "
                                   f"{counts[split]}")
        notes.append(f"{split} {len(images):,}")
    gz_files = [directory / name for name in release.gz_md5 if (directory / name).is_file()]
    original = sum(file_md5(path) == release.gz_md5[path.name] for path in gz_files)
    identity = ("content sha256 match the release" if release.content_sha256
                else "labels per class match the release")
    return (f"{directory}: {', '.join(notes)} images, {identity}; "
            f"{original} of {len(gz_files)} .gz files are the release's own (md5), the rest re-compressed")


def check_mnist(root: Path) -> str:
    import torchvision.datasets as tv

    release = dataclasses.replace(mnist.RELEASE, gz_md5=dict(tv.MNIST.resources))  # torchvision's list
    return _check_idx_release(release, root / mnist.MNIST_DIR, mnist.read_split, MNIST_COUNTS)


def check_fashion_mnist(root: Path) -> str:
    directory = fashion_mnist.find_directory(root)
    return _check_idx_release(fashion_mnist.RELEASE, directory, fashion_mnist.read_split, FASHION_MNIST_COUNTS)


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
    "fashion-mnist": check_fashion_mnist,
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
