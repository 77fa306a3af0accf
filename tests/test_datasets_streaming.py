"""Clothing1M, Food-101N and the streaming JPEG source, on tiny trees in the real layouts."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from noisybench.datasets import check, clothing1m, food101n, streaming
from noisybench.datasets.readers import DamagedDataError, MissingDataError
from noisybench.datasets.streaming import JpegStream, class_balanced_subsample, subsample_size


def write_jpeg(path: Path, color: tuple[int, int, int], size: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG", quality=95)


def assert_one_line(err: BaseException, *fragments: str) -> None:
    text = str(err)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ----------------------------------------------------------------------------- writers

# (key, noisy label, clean label or None); keys as the release writes them: images/<d>/<dd>/<name>.jpg
CLOTHING_TRAIN = [
    ("images/0/00/a0.jpg", 0, 0), ("images/0/00/a1.jpg", 0, 5), ("images/0/01/a2.jpg", 0, None),
    ("images/1/10/b0.jpg", 3, None), ("images/1/10/b1.jpg", 3, 3), ("images/2/20/c0.jpg", 13, None),
]
CLOTHING_TEST = [("images/9/90/t0.jpg", 7), ("images/9/90/t1.jpg", 11)]
CLOTHING_VAL = [("images/8/80/v0.jpg", 2)]


def write_clothing1m(root: Path, annotations_subdir: bool = False) -> Path:
    base = root / "clothing1m"
    notes = base / "annotations" if annotations_subdir else base
    notes.mkdir(parents=True, exist_ok=True)
    sizes = [(300, 260), (256, 400), (260, 256)]
    for i, (key, label, _) in enumerate(CLOTHING_TRAIN):
        write_jpeg(base / key, (10 * label, 100, 200), sizes[i % 3])
    for key, label in CLOTHING_TEST + CLOTHING_VAL:
        write_jpeg(base / key, (10 * label, 50, 50), (256, 300))
    # An extra noisy entry that is not in the training list, as in the release (kv > key list).
    noisy_kv = [f"{k} {lab}" for k, lab, _ in CLOTHING_TRAIN] + ["images/5/55/extra.jpg 4"]
    clean_kv = ([f"{k} {c}" for k, _, c in CLOTHING_TRAIN if c is not None]
                + [f"{k} {lab}" for k, lab in CLOTHING_TEST + CLOTHING_VAL] + ["images/4/40/ct.jpg 1"])
    random.Random(0).shuffle(noisy_kv)  # the kv files are not in key-list order
    (notes / "noisy_label_kv.txt").write_text("\n".join(noisy_kv) + "\n")
    (notes / "clean_label_kv.txt").write_text("\n".join(clean_kv) + "\n")
    (notes / "noisy_train_key_list.txt").write_text("\n".join(k for k, _, _ in CLOTHING_TRAIN) + "\n")
    (notes / "clean_train_key_list.txt").write_text("images/4/40/ct.jpg\n")
    (notes / "clean_val_key_list.txt").write_text("\n".join(k for k, _ in CLOTHING_VAL) + "\n")
    (notes / "clean_test_key_list.txt").write_text("\n".join(k for k, _ in CLOTHING_TEST) + "\n")
    return base


FOOD_CLASSES = ["apple_pie", "baby_back_ribs", "ramen"]
FOOD_TRAIN = ["ramen/r1.jpg", "apple_pie/a1.jpg", "baby_back_ribs/b1.jpg", "apple_pie/a2.jpg"]
FOOD_TEST = ["apple_pie/1011328", "ramen/99"]


def write_food101n(root: Path) -> None:
    noisy = root / "Food-101N_release"
    test = root / "food-101"
    (noisy / "meta").mkdir(parents=True)
    (test / "meta").mkdir(parents=True)
    (noisy / "meta" / "classes.txt").write_text("class_name\n" + "\n".join(FOOD_CLASSES) + "\n")
    (noisy / "meta" / "imagelist.tsv").write_text("class_name/key\n" + "\n".join(FOOD_TRAIN) + "\n")
    (noisy / "meta" / "verified_train.tsv").write_text(
        "class_name/key\tverification_label\napple_pie/a1.jpg\t1\nramen/r1.jpg\t0\nramen/ghost.jpg\t1\n")
    (noisy / "meta" / "verified_val.tsv").write_text(
        "class_name/key\tverification_label\nbaby_back_ribs/b1.jpg\t1\n")
    (test / "meta" / "classes.txt").write_text("\n".join(FOOD_CLASSES) + "\n")  # Food-101's: no header
    (test / "meta" / "test.txt").write_text("\n".join(FOOD_TEST) + "\n")
    for i, key in enumerate(FOOD_TRAIN):
        write_jpeg(noisy / "images" / key, (40 * i, 80, 120), (320, 256))
    for key in FOOD_TEST:
        write_jpeg(test / "images" / f"{key}.jpg", (200, 10, 10), (512, 384))


# ----------------------------------------------------------------------------- class-balanced draw

def dividemix_walk(labels: np.ndarray, num_samples: int, num_classes: int, order: np.ndarray) -> list[int]:
    """dataloader_clothing1M.py's loop, literally, over a given shuffled order."""
    kept, class_num = [], np.zeros(num_classes)
    for i in order:
        if class_num[labels[i]] < num_samples / num_classes and len(kept) < num_samples:
            kept.append(int(i))
            class_num[labels[i]] += 1
    return kept


@pytest.mark.parametrize("num_samples", [30, 31, 7, 200])
def test_class_balanced_subsample_is_dividemix_walk(num_samples):
    labels = np.repeat([0, 1, 2], [50, 10, 3])
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    drawn = class_balanced_subsample(labels, num_samples, 3, rng_a)
    order = rng_b.permutation(len(labels))  # the same first draw the function makes
    assert sorted(drawn.tolist()) == sorted(dividemix_walk(labels, num_samples, 3, order))
    assert len(drawn) == len(set(drawn.tolist())) == subsample_size(labels, num_samples, 3)


def test_class_balanced_subsample_counts_per_class():
    labels = np.repeat([0, 1, 2], [50, 10, 3])
    drawn = class_balanced_subsample(labels, 30, 3, np.random.default_rng(0))
    # quota 10 per class: the small class gives all 3 it has, the others 10 each
    assert np.bincount(labels[drawn], minlength=3).tolist() == [10, 10, 3]
    # DivideMix's Clothing1M numbers: 32,000 over 14 classes -> at most 2,286 per class; as
    # 14 x 2,286 = 32,004, the total cap trims the classes that fill last by 4 in all.
    big = np.repeat(np.arange(14), 3000)
    counts = np.bincount(big[class_balanced_subsample(big, 32_000, 14, np.random.default_rng(1))])
    assert counts.sum() == 32_000 and counts.max() == 2286 and (2286 - counts).sum() == 4


# ----------------------------------------------------------------------------- JpegStream

def make_stream(tmp_path: Path, **settings) -> JpegStream:
    """Eight 256x256 JPEGs, left half one colour and right half another (to see flips)."""
    from PIL import Image

    names = []
    for i in range(8):
        image = Image.new("RGB", (256, 256), (250, 0, 0))
        image.paste((0, 0, 250), (128, 0, 256, 256))
        name = f"img{i}.jpg"
        image.save(tmp_path / name, quality=95)
        names.append(name.encode())
    options = dict(labels=np.array([0, 0, 0, 0, 0, 1, 1, 2]), num_classes=3, augment=True, shuffle=True,
                   num_workers=0, dataset="Test")
    options.update(settings)
    return JpegStream(image_root=tmp_path, relative_paths=np.array(names, dtype=np.bytes_), **options)


def collect(stream: JpegStream, epoch: int, seed: int, batch_size: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    xs, idxs = zip(*stream.batches(epoch, seed, batch_size, "cpu"))
    return torch.cat(xs), torch.cat(idxs)


def test_stream_batches_shapes_dtypes_and_indices(tmp_path):
    stream = make_stream(tmp_path)
    batches = list(stream.batches(epoch=0, seed=1, batch_size=3, device="cpu"))
    assert [x.shape for x, _ in batches] == [(3, 3, 224, 224), (3, 3, 224, 224), (2, 3, 224, 224)]
    x, idx = batches[0]
    assert x.dtype == torch.uint8 and idx.dtype == torch.int64
    all_idx = torch.cat([i for _, i in batches])
    assert sorted(all_idx.tolist()) == list(range(8))  # no subsample: every image once
    assert all_idx.tolist() == stream.epoch_plan(0, 1).items.tolist()
    assert stream.num_images == stream.num_samples == 8
    dropped = list(stream.batches(0, 1, 3, "cpu", drop_last=True))
    assert len(dropped) == 2


def test_stream_is_deterministic_in_seed_and_epoch_and_worker_count(tmp_path):
    stream = make_stream(tmp_path)
    x1, i1 = collect(stream, epoch=2, seed=7)
    x2, i2 = collect(stream.replace(num_workers=2), epoch=2, seed=7)  # decoded in worker processes
    assert torch.equal(i1, i2) and torch.equal(x1, x2)
    _, i3 = collect(stream, epoch=3, seed=7)
    _, i4 = collect(stream, epoch=2, seed=8)
    assert not torch.equal(i1, i3) and not torch.equal(i1, i4)


def test_stream_flip_and_crop_follow_the_plan(tmp_path):
    stream = make_stream(tmp_path)
    plan = stream.epoch_plan(0, 3)
    x, idx = collect(stream, 0, 3)
    assert idx.tolist() == plan.items.tolist()
    assert plan.flips.any() and not plan.flips.all()
    for k in range(len(idx)):
        left, right = x[k, :, :, 0].float().mean(dim=1), x[k, :, :, -1].float().mean(dim=1)
        red, blue = torch.tensor([250.0, 0, 0]), torch.tensor([0, 0, 250.0])
        expect_left, expect_right = (blue, red) if plan.flips[k] else (red, blue)
        assert (left - expect_left).abs().max() < 12 and (right - expect_right).abs().max() < 12
    # the random crops differ between samples (the free range is 256-224 = 32 pixels each way)
    assert len({tuple(np.floor(f * 33).astype(int)) for f in plan.crop_fractions}) > 1


def test_stream_eval_mode_is_centre_crop_in_order(tmp_path):
    stream = make_stream(tmp_path, augment=False, shuffle=False)
    x, idx = collect(stream, 5, 5)
    assert idx.tolist() == list(range(8))
    # the centre crop starts at column 16, so the red/blue edge (column 128) lies at crop column 112
    assert x[0, 0, 100, 100] > 200 and x[0, 2, 100, 124] > 200


def test_stream_class_balanced_epochs(tmp_path):
    stream = make_stream(tmp_path, epoch_size=3)  # quota 1 per class
    assert stream.num_samples == 3
    _, idx = collect(stream, 0, 0)
    assert sorted(stream.labels[idx.numpy()].tolist()) == [0, 1, 2]
    _, again = collect(stream, 0, 0)
    assert torch.equal(idx, again)
    draws = {tuple(collect(stream, epoch, 0)[1].tolist()) for epoch in range(6)}
    assert len(draws) > 1  # a fresh subsample per epoch


def test_resize_and_crop_geometry_match_torchvision():
    from PIL import Image
    from torchvision.transforms import functional as tvf

    for size in [(300, 600), (600, 300), (257, 1000), (256, 300), (100, 90)]:
        image = Image.new("RGB", size)
        assert streaming.resized_to_short_side(image, 256).size == tvf.resize(image, 256).size, size
    # CenterCrop's rounding and RandomCrop's range
    assert streaming.crop_offset(288, None) == 144 and streaming.crop_offset(33, None) == 16
    assert streaming.crop_offset(32, 0.0) == 0 and streaming.crop_offset(32, 0.99999) == 32


def test_resize_pixels_match_torchvision_resize():
    from PIL import Image
    from torchvision.transforms import functional as tvf

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 410, 3), dtype=np.uint8))
    np.testing.assert_array_equal(np.asarray(streaming.resized_to_short_side(image, 256)),
                                  np.asarray(tvf.resize(image, 256)))


def test_stream_unreadable_image_is_one_line(tmp_path):
    stream = make_stream(tmp_path, augment=False, shuffle=False)
    (tmp_path / "img4.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DamagedDataError) as info:
        collect(stream, 0, 0)
    assert_one_line(info.value, str(tmp_path / "img4.jpg"), "Test image unreadable")


# ----------------------------------------------------------------------------- Clothing1M

@pytest.mark.parametrize("annotations_subdir", [False, True])
def test_clothing1m_lists_labels_and_streams(tmp_path, annotations_subdir):
    write_clothing1m(tmp_path, annotations_subdir)
    data = clothing1m.load_clothing1m(tmp_path)
    assert data.train_labels is None
    assert data.own_noisy_labels.tolist() == [lab for _, lab, _ in CLOTHING_TRAIN]  # key-list order
    assert data.own_noisy_labels.dtype == np.int64
    assert data.own_noise_rate == pytest.approx(0.3846)
    assert data.test_labels.tolist() == [7, 11]
    assert data.class_names[0] == "T-Shirt" and data.class_names[13] == "Underwear"
    assert data.train_images.shape == (0, 3, 224, 224) and data.test_images.shape == (0, 3, 224, 224)
    known = data.extras["train_clean_labels_where_known"]
    assert known.tolist() == [c if c is not None else -1 for _, _, c in CLOTHING_TRAIN]
    assert data.extras["val_labels"].tolist() == [2]

    train, test = data.train_stream, data.test_stream
    assert train.num_images == 6 and train.augment and train.epoch_size == 32_000
    assert train.path(5) == tmp_path / "clothing1m" / "images/2/20/c0.jpg"
    assert train.num_samples == 6  # every class has fewer images than DivideMix's quota
    x, idx = collect(train.replace(num_workers=0), 0, 0, batch_size=4)
    assert x.shape == (6, 3, 224, 224) and sorted(idx.tolist()) == list(range(6))
    # each image is a flat colour 10*label: batch rows line up with the labels idx points at
    reds = x[:, 0].float().mean(dim=(1, 2))
    expected = torch.tensor([10.0 * data.own_noisy_labels[i] for i in idx.tolist()])
    assert (reds - expected).abs().max() < 4
    tx, tidx = collect(test.replace(num_workers=0), 0, 0)
    assert tidx.tolist() == [0, 1] and not test.augment
    assert (tx[:, 0].float().mean(dim=(1, 2)) - torch.tensor([70.0, 110.0])).abs().max() < 4


def test_clothing1m_missing_files_and_images(tmp_path):
    with pytest.raises(MissingDataError) as info:
        clothing1m.load_clothing1m(tmp_path)
    assert_one_line(info.value, str(tmp_path / "clothing1m"), "noisy_label_kv.txt", "Cysu/noisy_label")
    base = write_clothing1m(tmp_path)
    (base / CLOTHING_TRAIN[0][0]).unlink()
    with pytest.raises(MissingDataError) as info:
        clothing1m.load_clothing1m(tmp_path)
    assert_one_line(info.value, "a0.jpg", str(base / "images/0/00"))


def test_clothing1m_damaged_label_files(tmp_path):
    base = write_clothing1m(tmp_path)
    (base / "noisy_label_kv.txt").write_text("images/0/00/a0.jpg 0\nimages/0/00/a1.jpg fourteen\n")
    with pytest.raises(DamagedDataError) as info:
        clothing1m.load_clothing1m(tmp_path)
    assert_one_line(info.value, "noisy_label_kv.txt", "line 2")
    (base / "noisy_label_kv.txt").write_text("images/0/00/a0.jpg 0\n")  # valid, but lacks 5 keys
    with pytest.raises(DamagedDataError) as info:
        clothing1m.load_clothing1m(tmp_path)
    assert_one_line(info.value, "noisy_train_key_list.txt", "5 keys have no label")


def test_clothing1m_duplicate_key_takes_the_later_line():
    keys, labels = np.array([b"b", b"a", b"b"]), np.array([1, 2, 3])
    order = np.argsort(keys, kind="stable")
    found = clothing1m.lookup_labels(keys[order], labels[order], np.array([b"b", b"a", b"c"]))
    assert found.tolist() == [3, 2, -1]


# ----------------------------------------------------------------------------- Food-101N

def test_food101n_labels_verification_and_test_split(tmp_path):
    write_food101n(tmp_path)
    data = food101n.load_food101n(tmp_path)
    assert data.class_names == tuple(FOOD_CLASSES)  # the header line is not a class
    assert data.own_noisy_labels.tolist() == [2, 0, 1, 0]  # imagelist order, folder -> class index
    assert data.train_labels is None and data.own_noise_rate == pytest.approx(0.20)
    assert data.test_labels.tolist() == [0, 2]
    assert data.extras["verification_labels"].tolist() == [0, 1, 1, -1]
    assert data.extras["verified_val_mask"].tolist() == [False, False, True, False]
    assert data.extras["verified_keys_not_in_imagelist"] == 1
    train, test = data.train_stream, data.test_stream
    assert train.epoch_size is None and train.num_samples == 4 and train.shuffle
    assert test.path(0) == tmp_path / "food-101" / "images" / "apple_pie" / "1011328.jpg"
    x, idx = collect(train.replace(num_workers=0), 1, 1, batch_size=2)
    assert x.shape == (4, 3, 224, 224) and sorted(idx.tolist()) == [0, 1, 2, 3]
    tx, _ = collect(test.replace(num_workers=0), 0, 0)
    assert tx.shape == (2, 3, 224, 224) and tx[:, 0].float().mean() > 190


def test_food101n_errors_name_the_layout(tmp_path):
    with pytest.raises(MissingDataError) as info:
        food101n.load_food101n(tmp_path)
    assert_one_line(info.value, str(tmp_path / "Food-101N_release" / "meta"), "imagelist.tsv", "food-101.tar.gz")
    write_food101n(tmp_path)
    (tmp_path / "food-101" / "meta" / "test.txt").write_text("sushi/1\n")
    with pytest.raises(DamagedDataError) as info:
        food101n.load_food101n(tmp_path)
    assert_one_line(info.value, "test.txt", "'sushi/1'")
    (tmp_path / "food-101" / "meta" / "test.txt").write_text("\n".join(FOOD_TEST) + "\n")
    (tmp_path / "Food-101N_release" / "meta" / "verified_val.tsv").write_text(
        "class_name/key\tverification_label\nramen/r1.jpg\tyes\n")
    with pytest.raises(DamagedDataError) as info:
        food101n.load_food101n(tmp_path)
    assert_one_line(info.value, "verified_val.tsv", "line 2")


# ----------------------------------------------------------------------------- data check

def test_check_clothing1m_and_food101n(tmp_path, monkeypatch):
    write_clothing1m(tmp_path)
    write_food101n(tmp_path)
    report = {name: (status, detail) for name, status, detail in check.check_datasets(tmp_path)}
    assert report["clothing1m"][0] == "damaged" and "1,000,000" in report["clothing1m"][1]
    assert report["food101n"][0] == "damaged" and "310,009" in report["food101n"][1]
    monkeypatch.setattr(check, "CLOTHING1M_KEY_COUNTS", {"noisy_train_key_list.txt": 6,
                                                         "clean_test_key_list.txt": 2})
    monkeypatch.setattr(check, "FOOD101N_IMAGES", 4)
    monkeypatch.setattr(check, "FOOD101_TEST_IMAGES", 2)
    report = {name: (status, detail) for name, status, detail in check.check_datasets(tmp_path)}
    assert report["clothing1m"][0] == "ok", report["clothing1m"]
    assert report["food101n"][0] == "ok", report["food101n"]
