"""The idx file format of MNIST and Fashion-MNIST, and which release a set of idx files is.

An idx file is a big-endian header -- magic number (2051 for images: type byte 0x08 =
unsigned byte, 3 dimensions; 2049 for labels: 0x08, 1 dimension), then one 32-bit size per
dimension -- followed by the values row-major.  Where both the plain file and its .gz exist
(torchvision keeps both), the plain one is read.

MNIST and Fashion-MNIST use the same four file names, headers and sizes, so a file's name
says nothing about which of the two it holds: the content does.  Each :class:`IdxRelease`
lists what is known of its files' content, and :func:`identify` refuses a file that is the
other release's (one line naming both) before anything is trained on it.  Content is hashed
after decompression, so a re-gzipped copy (Debian re-gzips Fashion-MNIST) still passes.
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from noisybench.datasets.readers import DamagedDataError, damaged_error, missing_error
from noisybench.datasets.registry import Dataset

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxRelease:
    """One published set of four idx files and what identifies its content.

    ``content_sha256``: file name -> sha256 of the decompressed file, where known.
    ``gz_md5``: the .gz name -> md5 of the release's own gzip file (torchvision's list).
    ``label_counts``: split -> images per class, for a release whose decompressed digests are
    not known here (MNIST): the labels must then at least be that release's.
    """

    name: str  # the dataset's registry name
    title: str  # as printed in messages
    directory: Path  # under the data root, torchvision's layout
    how_to_get: str  # the end of a "not found" message
    content_sha256: dict[str, str] = field(default_factory=dict)
    gz_md5: dict[str, str] = field(default_factory=dict)
    label_counts: dict[str, tuple[int, ...]] = field(default_factory=dict)


def find_idx_file(release: IdxRelease, directory: Path, name: str) -> Path:
    """The plain file if present, else its .gz; a missing one is a one-line error."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise missing_error(release.title, directory, f"{name} (or {name}.gz)", release.how_to_get)


def read_bytes(release: IdxRelease, path: Path) -> bytes:
    """The decompressed content of one idx file (a .gz is decompressed)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise damaged_error(release.title, path, f"cannot read: {err}", release.how_to_get) from None


def parse_idx(release: IdxRelease, path: Path, raw: bytes, magic: int) -> np.ndarray:
    """An idx file's values as a writable uint8 array shaped by its header; checks magic and length."""
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise damaged_error(release.title, path, f"{len(raw)} bytes, shorter than the {header_size}-byte header",
                            release.how_to_get)
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise damaged_error(release.title, path, f"magic number {found}, expected {magic}", release.how_to_get)
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    payload = len(raw) - header_size
    if payload != expected:
        shape = "x".join(str(d) for d in dims)
        raise damaged_error(release.title, path, f"{payload} data bytes, the header's {shape} needs {expected}",
                            release.how_to_get)
    # A copy, not a view of the immutable bytes: torch.from_numpy warns on (and cannot write
    # into) a read-only array, and the trainer hands these arrays to torch.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def identify(release: IdxRelease, others: tuple[IdxRelease, ...], path: Path, raw: bytes) -> None:
    """Refuse a file whose content is not ``release``'s: another release's (named), or unknown.

    Nothing of a refused file is trained on.  Where ``release`` has no content digest for the
    file, only another release's digest can refuse it here (its labels are checked by counts).
    """
    name = path.name.removesuffix(".gz")
    digest = hashlib.sha256(raw).hexdigest()
    for other in others:
        if other.content_sha256.get(name) == digest:
            raise DamagedDataError(
                f"{path} is {other.title}'s {name}, not {release.title}'s: {other.title} and {release.title} share "
                f"file names; put {other.title}'s files under <data root>/{other.directory} and use "
                f"--dataset {other.name}, and {release.title}'s under <data root>/{release.directory}")
    expected = release.content_sha256.get(name)
    if expected is not None and digest != expected:
        raise damaged_error(release.title, path, f"decompressed content has sha256 {digest[:16]}..., "
                            f"{release.title}'s release has {expected[:16]}...", release.how_to_get)


def check_label_counts(release: IdxRelease, path: Path, split: str, labels: np.ndarray) -> None:
    """Where a release is known by its label counts only, the labels must have exactly them."""
    expected = release.label_counts.get(split)
    if expected is None:
        return
    found = tuple(int(n) for n in np.bincount(labels, minlength=len(expected)))
    if found != expected:
        raise damaged_error(release.title, path, f"images per class {found}, {release.title}'s {split} split has "
                            f"{expected}", release.how_to_get)


def read_split(release: IdxRelease, others: tuple[IdxRelease, ...], directory: Path, split: str,
               ) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, H, W), labels int64 (N,)) of one split, identified and cross-checked."""
    images_name, labels_name = SPLIT_FILES[split]
    images_path = find_idx_file(release, directory, images_name)
    labels_path = find_idx_file(release, directory, labels_name)
    arrays = []
    for path, magic in ((images_path, IMAGES_MAGIC), (labels_path, LABELS_MAGIC)):
        raw = read_bytes(release, path)
        identify(release, others, path, raw)
        arrays.append(parse_idx(release, path, raw, magic))
    images, labels = arrays[0], arrays[1].astype(np.int64)
    if len(images) != len(labels):
        raise damaged_error(release.title, labels_path, f"{len(labels)} labels for {len(images)} images in "
                            f"{images_path.name}", release.how_to_get)
    if labels.size and labels.max() > 9:
        raise damaged_error(release.title, labels_path, f"label {labels.max()} outside 0..9", release.how_to_get)
    check_label_counts(release, labels_path, split, labels)
    return images[:, None, :, :], labels


def load_release(release: IdxRelease, directory: Path, class_names: tuple[str, ...],
                 asym_map: dict[int, int] | None = None) -> Dataset:
    """Both splits of ``release`` read from ``directory`` (each file identified) as its Dataset."""
    train_images, train_labels = read_split(release, others(release), directory, "train")
    test_images, test_labels = read_split(release, others(release), directory, "test")
    return Dataset(name=release.name, train_images=train_images, train_labels=train_labels,
                   test_images=test_images, test_labels=test_labels, class_names=class_names, asym_map=asym_map)


# ----------------------------------------------------------------------------- the two releases
# Both here, side by side, since each is refused under the other's name.

# No copy of MNIST's decompressed files is at hand to take their digests from, so MNIST is
# known by the md5 of its own .gz files (torchvision's MNIST.resources, checked by `bench data
# check`) and by its labels: the images per class of each split, as the release has them.
MNIST_LABEL_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}

MNIST = IdxRelease(
    name="mnist", title="MNIST", directory=Path("MNIST") / "raw",
    how_to_get=("pass --download, or get the four files from https://ossci-datasets.s3.amazonaws.com/mnist/ into "
                "<data root>/MNIST/raw"),
    gz_md5={  # torchvision.datasets.MNIST.resources
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    label_counts=MNIST_LABEL_COUNTS,
)


FASHION_MNIST = IdxRelease(
    name="fashion-mnist", title="Fashion-MNIST", directory=Path("FashionMNIST") / "raw",
    how_to_get=("apt-get install dataset-fashion-mnist (or make data), pass --download, or get the four files "
                "from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ into <data root>/FashionMNIST/raw"),
    # sha256 of the decompressed files, taken from Debian's dataset-fashion-mnist
    # 0.0~git20200523.55506a9-1 (the upstream repository at 55506a9, re-gzipped); the same
    # content as the release whose .gz md5s torchvision lists below (its first training labels
    # read 9 0 0 3 0 2 7 2 5 5, and every class has 6,000 training and 1,000 test images).
    content_sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    gz_md5={  # torchvision.datasets.FashionMNIST.resources (the original .gz files)
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
)

RELEASES = (MNIST, FASHION_MNIST)


def others(release: IdxRelease) -> tuple[IdxRelease, ...]:
    return tuple(other for other in RELEASES if other.name != release.name)


def torchvision_download(root: Path, torchvision_class: str, release: IdxRelease, url: str) -> None:
    """torchvision's download into ``root`` (it checks the .gz md5s and extracts next to them)."""
    import torchvision.datasets

    from noisybench.core.errors import BenchError
    from noisybench.datasets.readers import one_line

    try:
        getattr(torchvision.datasets, torchvision_class)(str(root), train=True, download=True)
    except Exception as err:  # noqa: BLE001  urllib/ssl/md5 failures all mean "no download"
        raise BenchError(
            f"could not download {release.title} into {root / release.directory} ({one_line(err)}); "
            f"on a machine with internet get the four files from {url} into {root / release.directory}"
        ) from None
