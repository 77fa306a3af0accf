"""apply_noise / check_noise_for_dataset per kind, label files, the trial record and the report."""
from __future__ import annotations

import json

import numpy as np
import pytest

import noisybench.datasets as datasets
from noisybench.core.errors import BenchError
from noisybench.datasets.registry import Dataset
from noisybench.noise import (
    NoisyLabels,
    apply_noise,
    check_noise_for_dataset,
    format_noise_report,
    load_label_file,
    parse_noise,
    save_labels,
)


def make_dataset(
    name: str = "toy",
    num_classes: int = 4,
    num_samples: int = 400,
    clean: bool = True,
    asym_map: dict[int, int] | None = None,
    own_noisy_labels: np.ndarray | None = None,
    own_noise_rate: float | None = None,
    streamed: bool = False,
) -> Dataset:
    labels = (np.arange(num_samples) % num_classes).astype(np.int64)
    images = np.random.default_rng(0).integers(0, 256, size=(num_samples, 1, 2, 2), dtype=np.uint8)
    if streamed:  # like Clothing1M: images delivered by a stream, none in memory
        images = np.zeros((0, 3, 4, 4), np.uint8)
    return Dataset(
        name=name,
        train_images=images,
        train_labels=labels if clean else None,
        test_images=np.zeros((2, *images.shape[1:]), np.uint8),
        test_labels=np.zeros(2, np.int64),
        class_names=tuple(f"class{c}" for c in range(num_classes)),
        asym_map=asym_map,
        own_noisy_labels=own_noisy_labels,
        own_noise_rate=own_noise_rate,
    )


def one_line_error(call, *fragments: str) -> str:
    with pytest.raises(BenchError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    return message


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return datasets.load("digits")


# --- each kind through apply_noise -----------------------------------------------------------


def test_clean_returns_the_clean_labels_as_a_copy(digits):
    noisy = apply_noise("clean", digits, seed=4)
    np.testing.assert_array_equal(noisy.labels, digits.train_labels)
    assert noisy.labels is not digits.train_labels and not np.shares_memory(noisy.labels, digits.train_labels)
    assert noisy.realised_rate == 0.0 and noisy.nominal_rate == 0.0
    np.testing.assert_array_equal(noisy.transition, np.eye(10))
    np.testing.assert_array_equal(noisy.empirical, np.diag(np.bincount(digits.train_labels)))


@pytest.mark.parametrize("text", ["sym:0.3", "pair:0.3", "asym:0.3", "inst:0.3"])
def test_synthetic_kinds_on_digits(digits, text):
    noisy = apply_noise(text, digits, seed=0)
    assert isinstance(noisy, NoisyLabels)
    assert noisy.labels.dtype == np.int64 and noisy.labels.shape == digits.train_labels.shape
    assert noisy.labels.min() >= 0 and noisy.labels.max() < 10
    assert noisy.spec == parse_noise(text) and noisy.seed == 0 and noisy.dataset_name == "digits"
    assert noisy.nominal_rate == 0.3
    assert noisy.realised_rate == pytest.approx((noisy.labels != digits.train_labels).mean())
    if text.startswith("inst"):
        assert noisy.transition is None
    else:
        np.testing.assert_allclose(noisy.transition.sum(axis=1), 1.0)


def test_asym_on_digits_uses_the_datasets_map(digits):
    noisy = apply_noise("asym:0.4", digits, seed=0)
    assert noisy.transition[2, 7] == pytest.approx(0.4) and noisy.transition[7, 1] == pytest.approx(0.4)
    flipped = noisy.labels != digits.train_labels
    assert set(np.unique(digits.train_labels[flipped])) <= {2, 3, 5, 6, 7}


def test_real_uses_the_datasets_own_labels_without_clean_labels():
    own = (np.arange(400) * 7 % 4).astype(np.int32)
    animals = make_dataset(name="animal10n", clean=False, own_noisy_labels=own, own_noise_rate=0.08)
    noisy = apply_noise("real", animals, seed=3)
    np.testing.assert_array_equal(noisy.labels, own)
    assert noisy.labels.dtype == np.int64
    assert noisy.nominal_rate == 0.08
    assert noisy.realised_rate is None and noisy.empirical is None and noisy.transition is None


def test_real_with_clean_labels_measures_the_rate():
    dataset = make_dataset(own_noisy_labels=np.zeros(400, np.int64), own_noise_rate=0.7)
    noisy = apply_noise("real", dataset, seed=0)
    assert noisy.realised_rate == pytest.approx(0.75)
    assert noisy.nominal_rate == 0.7


def test_streamed_dataset_takes_real_noise_sized_by_its_labels():
    own = np.arange(400, dtype=np.int64) % 4
    clothing = make_dataset(name="clothing1m", clean=False, own_noisy_labels=own, streamed=True)
    assert clothing.num_train == 0
    np.testing.assert_array_equal(apply_noise("real", clothing, seed=0).labels, own)
    path_free = make_dataset(name="clothing1m", clean=True, streamed=True)
    one_line_error(lambda: check_noise_for_dataset("inst:0.2", path_free), "inst:0.2 needs the training images in memory", "sym:0.2")


# --- refusals -----------------------------------------------------------------------------------


def test_asym_without_a_map_suggests_pair():
    one_line_error(
        lambda: check_noise_for_dataset("asym:0.3", make_dataset(name="svhn")),
        "dataset svhn has no asymmetric flip map for asym:0.3",
        "use pair:0.3 instead",
    )


@pytest.mark.parametrize("text", ["clean", "sym:0.2", "pair:0.2", "inst:0.2"])
def test_synthetic_noise_needs_clean_labels(text):
    animals = make_dataset(name="animal10n", clean=False, own_noisy_labels=np.zeros(400, np.int64))
    one_line_error(
        lambda: apply_noise(text, animals, seed=0),
        "dataset animal10n has no clean training labels",
        "use --noise real",
    )


def test_real_without_own_labels_is_refused_with_a_suggestion(digits):
    one_line_error(lambda: check_noise_for_dataset("real", digits), "digits has no noisy labels of its own", "sym:0.4")
    cifar = make_dataset(name="cifar10", num_classes=10)
    one_line_error(lambda: check_noise_for_dataset("real", cifar), "cifar10n:worse")
    cifar100 = make_dataset(name="cifar100", num_classes=100)
    one_line_error(lambda: check_noise_for_dataset("real", cifar100), "cifar100n:noisy")


@pytest.mark.parametrize("text, home", [("cifar10n:worse", "cifar10"), ("cifar100n:noisy", "cifar100")])
def test_human_labels_only_on_their_own_dataset(digits, text, home):
    one_line_error(
        lambda: check_noise_for_dataset(text, digits),
        f"{text} labels belong to {home}'s training images, not digits's",
        f"use --dataset {home} with --noise {text}",
    )


def test_missing_cifar_n_file_names_the_paths_and_the_source(tmp_path):
    cifar = make_dataset(name="cifar10", num_classes=10)
    one_line_error(
        lambda: check_noise_for_dataset("cifar10n:aggre", cifar, data_root=tmp_path),
        "CIFAR-10_human.pt not found",
        str(tmp_path / "cifar-n" / "CIFAR-10_human.pt"),
        str(tmp_path / "CIFAR-10_human.pt"),
        "UCSC-REAL/cifar-10-100n",
    )


def test_data_root_comes_from_the_environment_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISYBENCH_DATA", str(tmp_path / "from-env"))
    cifar = make_dataset(name="cifar100", num_classes=100)
    one_line_error(lambda: check_noise_for_dataset("cifar100n:noisy", cifar), str(tmp_path / "from-env" / "cifar-n"))


def test_unreadable_and_foreign_cifar_n_files_are_refused(tmp_path):
    import torch

    cifar = make_dataset(name="cifar10", num_classes=10)
    folder = tmp_path / "cifar-n"
    folder.mkdir()
    (folder / "CIFAR-10_human.pt").write_bytes(b"not a torch file")
    one_line_error(lambda: apply_noise("cifar10n:worse", cifar, 0, data_root=tmp_path), "cannot read CIFAR-N label file", "download it again")

    torch.save({"clean_label": cifar.train_labels}, folder / "CIFAR-10_human.pt")
    one_line_error(
        lambda: apply_noise("cifar10n:worse", cifar, 0, data_root=tmp_path),
        "no integer array 'worse_label'",
        "found: clean_label",
    )

    torch.save({"clean_label": np.zeros(7, np.int64), "worse_label": np.zeros(7, np.int64)}, folder / "CIFAR-10_human.pt")
    one_line_error(lambda: apply_noise("cifar10n:worse", cifar, 0, data_root=tmp_path), "has 7 labels", "400 training images")

    torch.save([1, 2, 3], folder / "CIFAR-10_human.pt")
    one_line_error(lambda: apply_noise("cifar10n:worse", cifar, 0, data_root=tmp_path), "holds a list, not a dict")


def test_small_cifar_n_file_in_the_published_format_round_trips(tmp_path):
    """A miniature CIFAR-10_human.pt (torch.save of numpy arrays) exercises the whole path."""
    import torch

    cifar = make_dataset(name="cifar10", num_classes=10)
    worse = (cifar.train_labels + (np.arange(400) % 5 == 0)) % 10
    (tmp_path / "CIFAR-10_human.pt").parent.mkdir(exist_ok=True)
    torch.save({"clean_label": cifar.train_labels.copy(), "worse_label": worse}, tmp_path / "CIFAR-10_human.pt")
    noisy = apply_noise("cifar10n:worse", cifar, seed=0, data_root=tmp_path)  # found in <root>/, not <root>/cifar-n/
    np.testing.assert_array_equal(noisy.labels, worse)
    assert noisy.realised_rate == pytest.approx(0.2)
    assert noisy.nominal_rate == 0.4021 and noisy.transition is None
    np.testing.assert_array_equal(noisy.labels, apply_noise("cifar10n:worse", cifar, seed=9, data_root=tmp_path).labels)
    noisy.labels[:] = 0  # the caller owns its copy: the cached file stays intact
    np.testing.assert_array_equal(apply_noise("cifar10n:worse", cifar, seed=0, data_root=tmp_path).labels, worse)


# --- label files --------------------------------------------------------------------------------


def test_label_file_round_trip_and_file_kind(tmp_path, digits):
    noisy = apply_noise("sym:0.4", digits, seed=2)
    path = save_labels(tmp_path / "out" / "sym40.npy", noisy.labels.astype(np.int32))
    assert path == tmp_path / "out" / "sym40.npy"
    assert np.load(path).dtype == np.int64
    np.testing.assert_array_equal(load_label_file(path, digits), noisy.labels)

    from_file = apply_noise(f"file:{path}", digits, seed=0)
    np.testing.assert_array_equal(from_file.labels, noisy.labels)
    assert from_file.realised_rate == pytest.approx(noisy.realised_rate)
    np.testing.assert_array_equal(from_file.empirical, noisy.empirical)
    assert from_file.nominal_rate is None and from_file.transition is None


def test_save_labels_refuses_a_name_numpy_would_change(tmp_path):
    one_line_error(lambda: save_labels(tmp_path / "labels", np.zeros(3, np.int64)), "must end in .npy", "labels.npy")
    with pytest.raises(ValueError):
        save_labels(tmp_path / "labels.npy", np.zeros((3, 2), np.int64))


def test_label_file_errors(tmp_path, digits):
    size = len(digits.train_labels)

    def write(name: str, array) -> str:
        np.save(tmp_path / name, array, allow_pickle=True)
        return str(tmp_path / name)

    one_line_error(lambda: load_label_file(tmp_path / "absent.npy", digits), "absent.npy not found", "check the path")
    one_line_error(lambda: apply_noise(f"file:{tmp_path / 'absent.npy'}", digits, 0), "not found")
    short = write("short.npy", np.zeros(size - 1, np.int64))
    one_line_error(lambda: load_label_file(short, digits), f"has {size - 1:,} labels but digits has {size:,}", "training order")
    high = write("high.npy", np.full(size, 10, np.int64))
    one_line_error(lambda: load_label_file(high, digits), "labels from 10 to 10", "classes 0..9", "0-based")
    negative = write("negative.npy", np.full(size, -1, np.int64))
    one_line_error(lambda: load_label_file(negative, digits), "labels from -1 to -1")
    floats = write("floats.npy", np.zeros(size, np.float32))
    one_line_error(lambda: load_label_file(floats, digits), "holds float32 values", "astype('int64')")
    one_hot = write("one_hot.npy", np.eye(10, dtype=np.int64)[digits.train_labels])
    one_line_error(lambda: load_label_file(one_hot, digits), f"has shape ({size}, 10)", "argmax(1)")
    objects = write("objects.npy", np.array([{"label": 1}] * size, dtype=object))
    one_line_error(lambda: load_label_file(objects, digits), "cannot read label file", "numpy.save")
    archive = tmp_path / "archive.npy"
    with open(archive, "wb") as handle:
        np.savez(handle, labels=digits.train_labels)
    one_line_error(lambda: load_label_file(archive, digits), "not a single .npy array")
    (tmp_path / "garbage.npy").write_bytes(b"\x00\x01 not numpy")
    one_line_error(lambda: load_label_file(tmp_path / "garbage.npy", digits), "cannot read label file")
    int32 = write("int32.npy", digits.train_labels.astype(np.int32))
    assert load_label_file(int32, digits).dtype == np.int64


# --- the trial record and the report ---------------------------------------------------------------


def test_as_json_is_json_and_complete(digits):
    noisy = apply_noise("pair:0.45", digits, seed=1)
    record = json.loads(json.dumps(noisy.as_json()))
    assert record["noise"] == "pair:0.45" and record["kind"] == "pair"
    assert record["seed"] == 1 and record["dataset"] == "digits"
    assert record["num_samples"] == len(digits.train_labels) and record["num_classes"] == 10
    assert record["realised_rate"] == noisy.realised_rate and record["nominal_rate"] == 0.45
    np.testing.assert_allclose(record["transition"], noisy.transition)
    np.testing.assert_array_equal(record["empirical"], noisy.empirical)
    assert record["labels_sha256"] == apply_noise("pair:0.45", digits, seed=1).labels_sha256
    assert record["labels_sha256"] != apply_noise("pair:0.45", digits, seed=2).labels_sha256


def test_as_json_without_clean_labels():
    animals = make_dataset(name="animal10n", clean=False, own_noisy_labels=np.zeros(400, np.int64), own_noise_rate=0.08)
    record = json.loads(json.dumps(apply_noise("real", animals, seed=0).as_json()))
    assert record["realised_rate"] is None and record["empirical"] is None and record["transition"] is None
    assert record["nominal_rate"] == 0.08


def test_report_on_ten_classes_prints_both_matrices(digits):
    noisy = apply_noise("asym:0.4", digits, seed=0)
    report = format_noise_report(noisy, digits.class_names)
    assert report.startswith("noise asym:0.4 on digits, seed 0: 1,257 training labels, 10 classes")
    assert f"realised noise rate {100 * noisy.realised_rate:.2f}%" in report
    assert "nominal 40.00%" in report
    assert "designed transition matrix T[clean, noisy]" in report and "0.600" in report
    assert "empirical transition (counts" in report
    empirical_rows = report.split("empirical transition")[1].splitlines()[2:]
    assert len(empirical_rows) == 10
    row_two = empirical_rows[2].split()
    assert row_two[0] == "2" and row_two[1:-1] == [f"{count:,}" for count in noisy.empirical[2]]


def test_report_names_the_classes_a_draw_outvotes(digits):
    noisy = apply_noise("pair:0.45", digits, seed=0)
    counts = noisy.empirical
    expected = [str(c) for c in range(10) if counts[c, (c + 1) % 10] >= counts[c, c]]
    assert expected == ["7"]  # seed 0 flips 63 of class 7's 125 labels to 8
    report = format_noise_report(noisy, digits.class_names)
    assert f"outvoted classes (another label at least as frequent as the clean one): {', '.join(expected)}" in report
    assert "outvoted" not in format_noise_report(apply_noise("sym:0.2", digits, seed=0), digits.class_names)


def test_report_names_classes_and_summarises_large_matrices():
    named = make_dataset(name="pets", num_classes=3, num_samples=300)
    named = Dataset(**{**named.__dict__, "class_names": ("cat", "dog", "fish")})
    assert "1 dog" in format_noise_report(apply_noise("sym:0.2", named, 0), named.class_names)

    wide = make_dataset(name="wide", num_classes=100, num_samples=20_000)
    noisy = apply_noise("pair:0.3", wide, seed=0)
    report = format_noise_report(noisy, wide.class_names)
    assert "100x100 matrices are too wide to print" in report
    assert "per-class noise rate: min" in report
    assert "most frequent flips" in report and "-> " in report
    assert max(len(line) for line in report.splitlines()) < 160


def test_report_without_clean_labels_shows_the_label_counts():
    animals = make_dataset(name="animal10n", clean=False, own_noisy_labels=np.arange(400) % 4, own_noise_rate=0.08)
    report = format_noise_report(apply_noise("real", animals, seed=0), animals.class_names)
    assert "realised noise rate unknown (no clean labels); nominal 8.00%" in report
    assert "designed transition matrix: none" in report
    assert "0 class0: 100" in report
    with pytest.raises(ValueError):
        format_noise_report(apply_noise("real", animals, seed=0), ("a", "b"))
