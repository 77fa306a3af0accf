"""Fashion-MNIST and MNIST: which release a set of idx files is, where Fashion-MNIST is looked
for, and the real Fashion-MNIST end to end.

The first part writes small idx files in the exact release format (the releases' own digests
then cannot match: tests give the release the fabricated files' digests, as a release's
table would hold the real ones).  The second part reads the real files Debian's
dataset-fashion-mnist installs (`make data`), and is skipped, saying why, where they are absent.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noisybench.bench.cli import main
from noisybench.core.errors import BenchError
from noisybench.datasets import fashion_mnist, idx, mnist
from noisybench.datasets.readers import DamagedDataError, MissingDataError

NAMES = [name for names in idx.SPLIT_FILES.values() for name in names]
DEBIAN_FILES = [fashion_mnist.DEBIAN_DIR / f"{name}.gz" for name in NAMES]
HAVE_REAL = all(path.is_file() for path in DEBIAN_FILES)
NO_REAL = ("the real Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist "
           "(make data, or apt-get install dataset-fashion-mnist, needs apt-get and root)")


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fabricate(directory: Path, seed: int = 0, gz: bool = False, train: int = 6, test: int = 4) -> dict[str, bytes]:
    """Four small idx files in ``directory``; returns each file's decompressed content."""
    rng = np.random.default_rng(seed)
    contents = {
        "train-images-idx3-ubyte": idx_bytes(2051, rng.integers(0, 256, (train, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(2049, np.arange(train) % 10),
        "t10k-images-idx3-ubyte": idx_bytes(2051, rng.integers(0, 256, (test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_bytes(2049, (np.arange(test) * 3) % 10),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(content, mtime=0))
        else:
            (directory / name).write_bytes(content)
    return contents


def digests(contents: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(content).hexdigest() for name, content in contents.items()}


@pytest.fixture
def releases(monkeypatch, tmp_path):
    """Point both loaders at test releases: Fashion-MNIST's digests are set per test, MNIST's
    label counts are dropped (fabricated files have a handful of images), Debian's folder is empty."""
    state = {"fashion": idx.FASHION_MNIST, "mnist": dataclasses.replace(idx.MNIST, label_counts={})}

    def install(fashion_digests: dict[str, str] | None = None, mnist_counts=None):
        if fashion_digests is not None:
            state["fashion"] = dataclasses.replace(idx.FASHION_MNIST, content_sha256=fashion_digests)
        if mnist_counts is not None:
            state["mnist"] = dataclasses.replace(idx.MNIST, label_counts=mnist_counts)
        monkeypatch.setattr(fashion_mnist, "RELEASE", state["fashion"])
        monkeypatch.setattr(mnist, "RELEASE", state["mnist"])
        monkeypatch.setattr(idx, "RELEASES", (state["mnist"], state["fashion"]))

    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-package")
    install()
    return install


def one_line(err: BaseException, *fragments: str) -> None:
    text = str(err)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ----------------------------------------------------------------------------- fabricated files

@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_loads_its_own_files_from_the_data_root(tmp_path, releases, gz):
    contents = fabricate(tmp_path / "FashionMNIST" / "raw", gz=gz)
    releases(fashion_digests=digests(contents))
    data = fashion_mnist.load_fashion_mnist(tmp_path)
    assert data.name == "fashion-mnist" and data.num_classes == 10
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert data.train_images.shape == (6, 1, 28, 28) and data.test_images.shape == (4, 1, 28, 28)
    assert data.train_labels.tolist() == [0, 1, 2, 3, 4, 5]
    # torch.from_numpy warns on read-only arrays: the loader hands over writable copies.
    assert data.train_images.flags.writeable and data.test_images.flags.writeable
    assert data.asym_map is None


def test_a_recompressed_copy_passes_by_its_content(tmp_path, releases):
    contents = fabricate(tmp_path / "FashionMNIST" / "raw", gz=True)
    releases(fashion_digests=digests(contents))
    path = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(contents["train-images-idx3-ubyte"], compresslevel=1, mtime=12345))
    assert fashion_mnist.load_fashion_mnist(tmp_path).num_train == 6


def test_other_content_under_fashion_mnist_names_is_refused(tmp_path, releases):
    releases(fashion_digests=digests(fabricate(tmp_path / "elsewhere")))
    fabricate(tmp_path / "FashionMNIST" / "raw", seed=1)  # same names and shapes, other pixels
    with pytest.raises(DamagedDataError) as info:
        fashion_mnist.load_fashion_mnist(tmp_path)
    one_line(info.value, "train-images-idx3-ubyte", "decompressed content has sha256", "Fashion-MNIST's release")


def test_fashion_mnist_files_under_mnist_are_refused_naming_both(tmp_path, releases):
    contents = fabricate(tmp_path / "MNIST" / "raw", gz=True)  # Fashion-MNIST's files, MNIST's folder
    releases(fashion_digests=digests(contents))
    with pytest.raises(DamagedDataError) as info:
        mnist.load_mnist(tmp_path)
    one_line(info.value, "is Fashion-MNIST's train-images-idx3-ubyte, not MNIST's", "--dataset fashion-mnist",
             "FashionMNIST/raw")


def test_the_mix_up_is_a_one_line_exit_2_before_any_trial(tmp_path, releases, capsys):
    releases(fashion_digests=digests(fabricate(tmp_path / "MNIST" / "raw")))
    results = tmp_path / "runs"
    code = main(["run", "--dataset", "mnist", "--data-root", str(tmp_path), "--methods", "standard",
                 "--noise", "sym:0.5", "--seeds", "1", "--epochs", "1", "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "Fashion-MNIST's" in err and "not MNIST's" in err
    assert not results.exists() or not any(results.iterdir())  # nothing trained, nothing half-written


def test_mnist_files_under_fashion_mnist_are_refused(tmp_path, releases):
    """MNIST's content is not Fashion-MNIST's digest: refused, whatever the folder's name says."""
    releases(fashion_digests=digests(fabricate(tmp_path / "elsewhere")))
    fabricate(tmp_path / "FashionMNIST" / "raw", seed=7)
    with pytest.raises(DamagedDataError):
        fashion_mnist.load_fashion_mnist(tmp_path)


def test_mnist_is_known_by_its_images_per_class(tmp_path, releases):
    fabricate(tmp_path / "MNIST" / "raw")  # 6 and 4 images: not MNIST's counts
    releases(mnist_counts=idx.MNIST.label_counts)
    with pytest.raises(DamagedDataError) as info:
        mnist.load_mnist(tmp_path)
    one_line(info.value, "images per class", "MNIST's train split has (5923, 6742")
    releases(mnist_counts={"train": (1,) * 6 + (0,) * 4, "test": (1, 0, 0, 1, 0, 0, 1, 0, 0, 1)})
    assert mnist.load_mnist(tmp_path).num_train == 6


def test_the_data_root_comes_before_debian(tmp_path, releases, monkeypatch):
    root_contents = fabricate(tmp_path / "root" / "FashionMNIST" / "raw", seed=3)
    debian = tmp_path / "debian"
    debian_contents = fabricate(debian, seed=4, gz=True, train=8)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", debian)
    releases(fashion_digests=digests(root_contents))
    assert fashion_mnist.load_fashion_mnist(tmp_path / "root").num_train == 6
    releases(fashion_digests=digests(debian_contents))
    assert fashion_mnist.load_fashion_mnist(tmp_path / "empty-root").num_train == 8  # found in Debian's folder


def test_missing_everywhere_is_one_line_naming_both_places_and_the_fix(tmp_path, releases):
    with pytest.raises(MissingDataError) as info:
        fashion_mnist.load_fashion_mnist(tmp_path)
    one_line(info.value, str(tmp_path / "FashionMNIST" / "raw"), "no-debian-package",
             "apt-get install dataset-fashion-mnist", "--download")


def test_download_is_tried_only_where_no_copy_is(tmp_path, releases, monkeypatch):
    calls = []
    monkeypatch.setattr(idx, "torchvision_download", lambda *args: calls.append(args))
    with pytest.raises(MissingDataError):
        fashion_mnist.load_fashion_mnist(tmp_path, download=True)
    assert [call[1] for call in calls] == ["FashionMNIST"]
    releases(fashion_digests=digests(fabricate(tmp_path / "FashionMNIST" / "raw")))
    fashion_mnist.load_fashion_mnist(tmp_path, download=True)
    assert len(calls) == 1  # present: not downloaded again


def test_asym_noise_is_refused_on_fashion_mnist(tmp_path, releases):
    import noisybench.noise as noise

    releases(fashion_digests=digests(fabricate(tmp_path / "FashionMNIST" / "raw", train=20)))
    dataset = fashion_mnist.load_fashion_mnist(tmp_path)
    with pytest.raises(BenchError) as info:
        noise.apply_noise("asym:0.4", dataset, 0, tmp_path)
    one_line(info.value, "fashion-mnist has no asymmetric flip map", "pair:0.4")


# ----------------------------------------------------------------------------- the real files

@pytest.mark.skipif(not HAVE_REAL, reason=NO_REAL)
def test_the_real_fashion_mnist_is_the_release():
    data = fashion_mnist.load_fashion_mnist(Path("/nonexistent-data-root"))
    assert data.train_images.shape == (60_000, 1, 28, 28) and data.test_images.shape == (10_000, 1, 28, 28)
    assert data.train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # as the original release
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


@pytest.mark.skipif(not HAVE_REAL, reason=NO_REAL)
def test_the_real_fashion_mnist_under_mnist_is_refused(tmp_path, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in DEBIAN_FILES:
        (raw / path.name).symlink_to(path)
    code = main(["run", "--dataset", "mnist", "--data-root", str(tmp_path), "--methods", "standard",
                 "--noise", "sym:0.5", "--seeds", "1", "--epochs", "1", "--results", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "is Fashion-MNIST's train-images-idx3-ubyte, not MNIST's" in err


@pytest.mark.skipif(not HAVE_REAL, reason=NO_REAL)
def test_a_trial_trains_on_the_real_images_without_warnings(tmp_path):
    """One epoch of the quick recipe through the installed `bench`, as a user types it: real
    accuracy, and nothing on stderr a user could not act on (the not-writable warning was one)."""
    bench = Path(sys.executable).parent / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    done = subprocess.run([str(bench), "run", "--dataset", "fashion-mnist", "--methods", "standard", "--noise",
                           "sym:0.5", "--seeds", "1", "--epochs", "2", "--data-root", str(tmp_path / "empty"),
                           "--results", str(tmp_path / "runs")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "warn" not in done.stderr.lower(), done.stderr
    (metrics,) = (tmp_path / "runs").glob("*/metrics.jsonl")
    epochs = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(epochs) == 2
    assert epochs[-1]["test_acc"] > 0.70  # a 784-256-10 MLP on half-wrong labels, after 2 epochs: ~0.8


def test_causalnl_recipe_trains_and_tests_on_transposed_images(tmp_path, releases):
    """CausalNL's loader transposes every image after the noise is drawn: the trainer does the same
    to both splits under causalnl-paper, and to neither under quick."""
    import torch

    from noisybench.bench.trainer.protocols import resolve_recipe
    from noisybench.bench.trainer.data import DeviceData

    releases(fashion_digests=digests(fabricate(tmp_path / "FashionMNIST" / "raw")))
    dataset = fashion_mnist.load_fashion_mnist(tmp_path)
    everything, nothing = np.arange(dataset.num_train), np.arange(0)
    for protocol, transposed in (("causalnl-paper", True), ("quick", False)):
        recipe = resolve_recipe(protocol, "fashion-mnist", "standard")
        data = DeviceData(dataset, dataset.train_labels, recipe, torch.device("cpu"), everything, nothing)
        train, test = torch.from_numpy(dataset.train_images), torch.from_numpy(dataset.test_images)
        if transposed:
            train, test = train.transpose(-1, -2), test.transpose(-1, -2)
        assert torch.equal(data.images, train) and torch.equal(data.test_images, test)
