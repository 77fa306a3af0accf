"""Loaders for CIFAR-10/100, MNIST and ANIMAL-10N on small files written in the real formats.

No dataset can be downloaded here, so each test writes a handful of images exactly as
the official releases lay them out (CIFAR python pickles, idx files, <label>_<id>.jpg
folders) and checks what the loader makes of them, byte for byte where the format is
lossless.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

import noisybench.datasets as datasets
from noisybench.core.errors import BenchError
from noisybench.datasets import animal10n, check, cifar, mnist
from noisybench.datasets.readers import DamagedDataError, MissingDataError

@pytest.fixture(autouse=True)
def fabricated_mnist_counts_as_mnist(monkeypatch):
    """The fabricated MNIST files here hold a handful of images, not the release's images per class,
    by which MNIST is known (datasets/mnist.py); tests/test_datasets_idx.py checks that rule."""
    monkeypatch.setattr(mnist, "RELEASE", dataclasses.replace(mnist.RELEASE, label_counts={}))


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ----------------------------------------------------------------------------- writers

def write_pickle(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)  # the releases are Python 2 pickles (protocol <= 2)


def cifar_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 3, seed: int = 0) -> dict:
    """Five training batches + test batch + meta; returns what was written, for comparison."""
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    written = {"train_rows": [], "train_labels": []}
    for b in range(1, 6):
        rows = cifar_rows(rng, per_batch)
        # Labels that spell out the batch number, so a wrong batch order shows up.
        labels = [(b + i) % 10 for i in range(per_batch)]
        write_pickle(directory / f"data_batch_{b}", {
            b"batch_label": f"training batch {b} of 5".encode(), b"labels": labels, b"data": rows,
            b"filenames": [f"img_{b}_{i}.png".encode() for i in range(per_batch)],
        })
        written["train_rows"].append(rows)
        written["train_labels"].extend(labels)
    test_rows = cifar_rows(rng, 2)
    write_pickle(directory / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": [7, 3],
                                            b"data": test_rows, b"filenames": [b"t0.png", b"t1.png"]})
    write_pickle(directory / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES],
                                              b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    written["test_rows"] = test_rows
    return written


def write_cifar100(root: Path) -> None:
    rng = np.random.default_rng(1)
    directory = root / "cifar-100-python"
    fine_names = [f"fine{i:02d}".encode() for i in range(100)]
    coarse_names = [f"coarse{i:02d}".encode() for i in range(20)]
    write_pickle(directory / "train", {b"data": cifar_rows(rng, 4), b"fine_labels": [0, 99, 42, 5],
                                       b"coarse_labels": [4, 19, 0, 1], b"filenames": [b"a", b"b", b"c", b"d"]})
    write_pickle(directory / "test", {b"data": cifar_rows(rng, 2), b"fine_labels": [1, 2],
                                      b"coarse_labels": [3, 3], b"filenames": [b"e", b"f"]})
    write_pickle(directory / "meta", {b"fine_label_names": fine_names, b"coarse_label_names": coarse_names})


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, num_train: int = 5, num_test: int = 3, gz: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    directory = root / "MNIST" / "raw"
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": (2051, rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8)),
        "train-labels-idx1-ubyte": (2049, rng.integers(0, 10, num_train, dtype=np.uint8)),
        "t10k-images-idx3-ubyte": (2051, rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": (2049, rng.integers(0, 10, num_test, dtype=np.uint8)),
    }
    for name, (magic, array) in arrays.items():
        content = idx_bytes(magic, array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (directory / name).write_bytes(content)
    return {name: array for name, (_, array) in arrays.items()}


def write_jpeg(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG", quality=95)


def animal_color(label: int, serial: int) -> tuple[int, int, int]:
    return (20 * label + 5, 200 - 10 * serial, 128)


def write_animal10n(root: Path) -> dict:
    """Training: labels spread over files written out of name order; testing: two files."""
    base = root / "animal10n"
    train = {"3_00002.jpg": 3, "0_00010.jpg": 0, "9_00001.jpg": 9, "3_00000.jpg": 3}
    test = {"1_00003.jpg": 1, "5_00004.jpg": 5}
    for split, files in (("training", train), ("testing", test)):
        for serial, (name, label) in enumerate(files.items()):
            write_jpeg(base / split / name, animal_color(label, serial))
    return {"train": train, "test": test}


def assert_one_line(err: BaseException, *fragments: str) -> None:
    text = str(err)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ----------------------------------------------------------------------------- CIFAR

def test_cifar10_shapes_dtypes_and_training_order(tmp_path):
    written = write_cifar10(tmp_path)
    data = cifar.load_cifar10(tmp_path)
    assert data.train_images.shape == (15, 3, 32, 32) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (2, 3, 32, 32)
    assert data.train_labels.dtype == np.int64 and data.test_labels.dtype == np.int64
    # data_batch_1..5 concatenated, in that order: the CIFAR-N label files depend on it.
    assert data.train_labels.tolist() == written["train_labels"]
    expected = np.concatenate(written["train_rows"]).reshape(15, 3, 32, 32)
    np.testing.assert_array_equal(data.train_images, expected)
    np.testing.assert_array_equal(data.test_images, written["test_rows"].reshape(2, 3, 32, 32))
    assert data.test_labels.tolist() == [7, 3]
    assert data.class_names == tuple(CIFAR10_NAMES)
    assert data.asym_map == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    assert data.own_noisy_labels is None and data.train_stream is None


def test_cifar10_pixel_planes_land_in_rgb_channels(tmp_path):
    write_cifar10(tmp_path)
    directory = tmp_path / "cifar-10-batches-py"
    with open(directory / "data_batch_1", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    row, col = 2, 5
    offset = row * 32 + col  # each plane is 32x32, row-major
    batch[b"data"][0, offset] = 11  # red plane
    batch[b"data"][0, 1024 + offset] = 22  # green plane
    batch[b"data"][0, 2048 + offset] = 33  # blue plane
    write_pickle(directory / "data_batch_1", batch)
    data = cifar.load_cifar10(tmp_path)
    assert data.train_images[0, :, row, col].tolist() == [11, 22, 33]
    # and the HWC view a PIL image would show: pixel (row, col) is (R, G, B)
    assert data.train_images[0].transpose(1, 2, 0)[row, col].tolist() == [11, 22, 33]


def test_cifar100_fine_labels_coarse_extras_and_asym_blocks(tmp_path):
    write_cifar100(tmp_path)
    data = cifar.load_cifar100(tmp_path)
    assert data.train_images.shape == (4, 3, 32, 32)
    assert data.train_labels.tolist() == [0, 99, 42, 5]
    assert data.test_labels.tolist() == [1, 2]
    assert data.class_names[99] == "fine99" and len(data.class_names) == 100
    assert data.extras["train_coarse_labels"].tolist() == [4, 19, 0, 1]
    assert data.extras["coarse_class_names"][19] == "coarse19"
    # Patrini's blocks of five: 0->1 .. 3->4, 4->0 (cyclic within the block), 99->95.
    assert [data.asym_map[c] for c in (0, 3, 4, 5, 99)] == [1, 4, 0, 6, 95]


def test_cifar_missing_directory_is_one_line_naming_path_and_download(tmp_path):
    with pytest.raises(MissingDataError) as info:
        cifar.load_cifar10(tmp_path)
    assert_one_line(info.value, str(tmp_path / "cifar-10-batches-py"), "--download", "cifar-10-python.tar.gz")


def test_cifar_missing_single_batch_is_named(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(MissingDataError) as info:
        cifar.load_cifar10(tmp_path)
    assert_one_line(info.value, "data_batch_4")
    assert "data_batch_3" not in str(info.value)


def test_cifar_truncated_pickle_is_one_line_damaged(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DamagedDataError) as info:
        cifar.load_cifar10(tmp_path)
    assert_one_line(info.value, str(path), "damaged")


def test_cifar_wrong_row_length_is_damaged(tmp_path):
    write_cifar10(tmp_path)
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch",
                 {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DamagedDataError) as info:
        cifar.load_cifar10(tmp_path)
    assert_one_line(info.value, "test_batch", "3072")


def test_cifar_download_goes_through_torchvision_then_our_reader(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:  # stands in for the network: writes the release as the tarball would
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_cifar10(Path(root), seed=5)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data = cifar.load_cifar10(tmp_path, download=True)
    assert calls == [(str(tmp_path), True, True)]
    written = write_cifar10(tmp_path / "again", seed=5)
    np.testing.assert_array_equal(data.train_images, np.concatenate(written["train_rows"]).reshape(-1, 3, 32, 32))


def test_cifar_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Error downloading cifar-10-python.tar.gz:\nTried https://..., got:\nURLError")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", Offline)
    with pytest.raises(BenchError) as info:
        cifar.load_cifar100(tmp_path, download=True)
    assert_one_line(info.value, "could not download CIFAR-100", str(tmp_path), "cifar-100-python.tar.gz")


# ----------------------------------------------------------------------------- MNIST

@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_plain_and_gz_idx(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    data = mnist.load_mnist(tmp_path)
    assert data.train_images.shape == (5, 1, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(data.train_images[:, 0], arrays["train-images-idx3-ubyte"])
    assert data.train_labels.dtype == np.int64
    assert data.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.class_names == tuple("0123456789")
    assert data.asym_map == {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}


def test_mnist_prefers_plain_file_when_both_exist(tmp_path):
    plain = write_mnist(tmp_path, seed=1)
    write_mnist(tmp_path, gz=True, seed=2)  # torchvision keeps the .gz next to the extracted file
    data = mnist.load_mnist(tmp_path)
    np.testing.assert_array_equal(data.train_images[:, 0], plain["train-images-idx3-ubyte"])


def test_mnist_wrong_magic_is_one_line(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[:4] = struct.pack(">I", 2051)  # an images magic on a labels file
    path.write_bytes(bytes(raw))
    with pytest.raises(DamagedDataError) as info:
        mnist.load_mnist(tmp_path)
    assert_one_line(info.value, str(path), "magic number 2051, expected 2049")


def test_mnist_truncated_images_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DamagedDataError) as info:
        mnist.load_mnist(tmp_path)
    assert_one_line(info.value, str(path), "5x28x28 needs 3920")


def test_mnist_truncated_gz_is_damaged_not_a_traceback(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(DamagedDataError) as info:
        mnist.load_mnist(tmp_path)
    assert_one_line(info.value, str(path))


def test_mnist_image_and_label_counts_must_agree(tmp_path):
    write_mnist(tmp_path)
    directory = tmp_path / "MNIST" / "raw"
    (directory / "train-labels-idx1-ubyte").write_bytes(idx_bytes(2049, np.zeros(4, np.uint8)))
    with pytest.raises(DamagedDataError) as info:
        mnist.load_mnist(tmp_path)
    assert_one_line(info.value, "4 labels for 5 images")


def test_mnist_missing_is_one_line_with_download_hint(tmp_path):
    with pytest.raises(MissingDataError) as info:
        mnist.load_mnist(tmp_path)
    assert_one_line(info.value, str(tmp_path / "MNIST" / "raw"), "train-images-idx3-ubyte", "--download")


# ----------------------------------------------------------------------------- ANIMAL-10N

def test_animal10n_labels_from_names_in_sorted_order(tmp_path):
    write_animal10n(tmp_path)
    data = animal10n.load_animal10n(tmp_path)
    assert data.train_images.shape == (4, 3, 64, 64) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (2, 3, 64, 64)
    assert data.extras["train_files"] == ("0_00010.jpg", "3_00000.jpg", "3_00002.jpg", "9_00001.jpg")
    assert data.own_noisy_labels.tolist() == [0, 3, 3, 9] and data.own_noisy_labels.dtype == np.int64
    assert data.train_labels is None
    assert data.test_labels.tolist() == [1, 5]
    assert data.own_noise_rate == pytest.approx(0.08)
    assert data.class_names[0] == "cat" and data.class_names[9] == "guinea pig"
    assert data.asym_map is None


def test_animal10n_pixels_round_trip_channels_first(tmp_path):
    write_animal10n(tmp_path)
    data = animal10n.load_animal10n(tmp_path)
    # "3_00000.jpg" was the 4th file written (serial 3): a flat colour survives JPEG within a step or two.
    expected = np.array(animal_color(3, 3))
    second = data.train_images[1]  # sorted: 0_00010, 3_00000, ...
    assert np.abs(second.reshape(3, -1).mean(axis=1) - expected).max() < 3
    assert np.abs(second[:, 10, 20].astype(int) - expected).max() < 4


def test_animal10n_wrong_image_size_is_damaged(tmp_path):
    write_animal10n(tmp_path)
    bad = tmp_path / "animal10n" / "training" / "3_00002.jpg"
    write_jpeg(bad, (1, 2, 3), size=(32, 64))
    with pytest.raises(DamagedDataError) as info:
        animal10n.load_animal10n(tmp_path)
    assert_one_line(info.value, str(bad), "32x64, expected 64x64")


def test_animal10n_unreadable_jpeg_is_damaged(tmp_path):
    write_animal10n(tmp_path)
    bad = tmp_path / "animal10n" / "testing" / "5_00004.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DamagedDataError) as info:
        animal10n.load_animal10n(tmp_path)
    assert_one_line(info.value, str(bad), "cannot decode")


def test_animal10n_bad_file_name_and_missing_folder(tmp_path):
    write_animal10n(tmp_path)
    write_jpeg(tmp_path / "animal10n" / "training" / "cat_00001.jpg", (0, 0, 0))
    with pytest.raises(DamagedDataError) as info:
        animal10n.load_animal10n(tmp_path)
    assert_one_line(info.value, "cat_00001.jpg", "<label>_<id>.jpg")
    with pytest.raises(MissingDataError) as info:
        animal10n.load_animal10n(tmp_path / "elsewhere")
    assert_one_line(info.value, str(tmp_path / "elsewhere" / "animal10n"), "training/", "dm.kaist.ac.kr")


# ----------------------------------------------------------------------------- registry

def test_loaders_are_registered_and_load_through_the_registry(tmp_path):
    assert {"cifar10", "cifar100", "mnist", "animal10n", "clothing1m", "food101n"} <= set(datasets.dataset_names())
    write_mnist(tmp_path)
    assert datasets.load("mnist", tmp_path).num_train == 5


# ----------------------------------------------------------------------------- data check

def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _statuses(root: Path) -> dict[str, tuple[str, str]]:
    return {name: (status, detail) for name, status, detail in check.check_datasets(root)}


def test_check_reports_missing_everywhere_on_an_empty_root(tmp_path):
    report = _statuses(tmp_path)
    assert report["digits"][0] == "ok"
    for name in ("cifar10", "cifar100", "mnist", "animal10n", "clothing1m", "food101n"):
        assert report[name][0] == "missing", (name, report[name])
        assert "\n" not in report[name][1]


def test_check_cifar_md5_against_torchvision_lists(tmp_path, monkeypatch):
    import torchvision.datasets as tv

    write_cifar10(tmp_path)
    # The fake files cannot have the real checksums: the real list must call them damaged...
    status, detail = _statuses(tmp_path)["cifar10"]
    assert status == "damaged" and "data_batch_1 md5" in detail
    # ... and a list with their own checksums must call them ok.
    directory = tmp_path / "cifar-10-batches-py"
    monkeypatch.setattr(tv.CIFAR10, "train_list", [[f"data_batch_{i}", _md5(directory / f"data_batch_{i}")]
                                                    for i in range(1, 6)])
    monkeypatch.setattr(tv.CIFAR10, "test_list", [["test_batch", _md5(directory / "test_batch")]])
    monkeypatch.setattr(tv.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                             "md5": _md5(directory / "batches.meta")})
    status, detail = _statuses(tmp_path)["cifar10"]
    assert status == "ok" and "md5 match" in detail


def test_check_mnist_gz_md5_and_counts(tmp_path, monkeypatch):
    import torchvision.datasets as tv

    write_mnist(tmp_path, gz=True)
    status, detail = _statuses(tmp_path)["mnist"]
    assert status == "damaged" and "60000" in detail  # 5 training images are not MNIST's 60,000
    monkeypatch.setattr(check, "MNIST_COUNTS", {"train": 5, "test": 3})
    # Other .gz bytes than the release's are no damage by themselves: a re-gzipped copy holds
    # the same content, which the loader identifies.
    status, detail = _statuses(tmp_path)["mnist"]
    assert status == "ok" and "0 of 4 .gz files are the release's own" in detail
    directory = tmp_path / "MNIST" / "raw"
    monkeypatch.setattr(tv.MNIST, "resources", [(p.name, _md5(p)) for p in sorted(directory.glob("*.gz"))])
    status, detail = _statuses(tmp_path)["mnist"]
    assert status == "ok" and "4 of 4 .gz files are the release's own" in detail


def test_check_animal10n_counts(tmp_path, monkeypatch):
    write_animal10n(tmp_path)
    assert _statuses(tmp_path)["animal10n"][0] == "damaged"
    monkeypatch.setattr(check, "ANIMAL10N_COUNTS", {"training": 4, "testing": 2})
    status, detail = _statuses(tmp_path)["animal10n"]
    assert status == "ok" and "training 4" in detail
