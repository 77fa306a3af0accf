"""Real datasets through the whole bench: loaders -> noise -> trainer -> store -> table.

No dataset can be downloaded here, so every run reads small files written in the exact
release formats (CIFAR python pickles, Clothing1M key/label lists with JPEGs, Animal-10N
file names).  The CIFAR-10N run uses the real label file from ../shared/data/cifar-n on a
fabricated CIFAR-10 whose 50,000 training labels are that file's clean_label.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import noisybench.datasets as datasets
from noisybench.bench.cli import main
from noisybench.bench.trainer.protocols import IMAGENET_MEAN_STD, default_protocol, resolve_recipe
from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.errors import BenchError
from noisybench.core.seeding import LEGACY_SEEDING
from noisybench.core.spec import TrialSpec
from noisybench.datasets.registry import _CACHE
from noisybench.methods.networks import build_model
from noisybench.methods.networks.pretrained import load_pretrained, read_state_dict
from noisybench.results.store import TrialStore

REPO = Path(__file__).resolve().parent.parent
CIFAR_N_DIR = REPO.parent / "shared" / "data" / "cifar-n"
CIFAR10N_FILE = CIFAR_N_DIR / "CIFAR-10_human.pt"


# ----------------------------------------------------------------------------- writers

def write_pickle(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)  # the release's Python 2 pickles


def write_cifar10(root: Path, train_labels: np.ndarray, num_test: int = 50, seed: int = 0) -> Path:
    """cifar-10-batches-py/ with random pixels: five training batches (the labels in order),
    a test batch and batches.meta, each pickle as in the release."""
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    for number, labels in enumerate(np.array_split(np.asarray(train_labels), 5), start=1):
        rows = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        write_pickle(directory / f"data_batch_{number}", {
            b"batch_label": f"training batch {number} of 5".encode(), b"labels": [int(v) for v in labels],
            b"data": rows, b"filenames": [f"{number}_{i}.png".encode() for i in range(len(labels))]})
    write_pickle(directory / "test_batch", {
        b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in rng.integers(0, 10, num_test)],
        b"data": rng.integers(0, 256, size=(num_test, 3072), dtype=np.uint8),
        b"filenames": [f"t{i}.png".encode() for i in range(num_test)]})
    write_pickle(directory / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)],
                                              b"num_cases_per_batch": 10000, b"num_vis": 3072})
    return root


def write_jpeg(path: Path, rng: np.random.Generator, size: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="JPEG")


def write_clothing1m(root: Path, num_train: int = 16, num_test: int = 4) -> Path:
    """clothing1m/ as released: images/<d>/<dd>/*.jpg, the two key-label files and the four
    key lists; small JPEGs of varied sizes (the stream resizes them to 256 and crops 224)."""
    rng = np.random.default_rng(1)
    base = root / "clothing1m"
    train = [(f"images/{i % 10}/{i % 10}{i % 3}/{i:04d}.jpg", i % 14) for i in range(num_train)]
    test = [(f"images/9/9{i}/t{i}.jpg", (3 * i) % 14) for i in range(num_test)]
    val = [("images/8/80/v0.jpg", 5)]
    for number, (key, _) in enumerate(train + test + val):
        write_jpeg(base / key, rng, (24 + number % 5, 20 + number % 3))
    base.mkdir(parents=True, exist_ok=True)
    (base / "noisy_label_kv.txt").write_text("".join(f"{k} {label}\n" for k, label in train))
    (base / "clean_label_kv.txt").write_text("".join(f"{k} {label}\n" for k, label in test + val))
    (base / "noisy_train_key_list.txt").write_text("".join(f"{k}\n" for k, _ in train))
    (base / "clean_train_key_list.txt").write_text("")
    (base / "clean_val_key_list.txt").write_text("".join(f"{k}\n" for k, _ in val))
    (base / "clean_test_key_list.txt").write_text("".join(f"{k}\n" for k, _ in test))
    return root


def write_animal10n(root: Path, num_train: int = 40, num_test: int = 10) -> Path:
    """animal10n/training and /testing: 64x64 JPEGs named <label>_<id>.jpg."""
    rng = np.random.default_rng(2)
    for split, count in (("training", num_train), ("testing", num_test)):
        for i in range(count):
            write_jpeg(root / "animal10n" / split / f"{i % 10}_{i:05d}.jpg", rng, (64, 64))
    return root


@pytest.fixture(autouse=True)
def fresh_dataset_cache():
    """Loaders cache per (name, root); tmp roots are unique, but keep the cache from growing."""
    yield
    _CACHE.clear()


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def only_trial(results: Path):
    trials = list(TrialStore(results).trials())
    assert len(trials) == 1, trials
    return trials[0]


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# ----------------------------------------------------------------------------- CIFAR-10

def test_cifar10_run_trains_and_tables(tmp_path, capsys):
    root = write_cifar10(tmp_path / "data", np.arange(200) % 10)
    results = tmp_path / "runs"
    code, out, err = run_cli(["run", "--dataset", "cifar10", "--data-root", root, "--model", "cnn",
                              "--epochs", "1", "--results", results, "--device", "cpu"], capsys)
    assert code == 0, err
    assert "| standard" in out and "sym:0.4 Best" in out
    assert "protocol lend-paper[model=cnn,epochs=1]" in out
    record = only_trial(results).read_spec()
    assert record["num_train"] == 200
    assert record["recipe"]["augment"] and record["recipe"]["normalize"] and record["recipe"]["mean_std"] is None
    assert record["noise"]["realised_rate"] is not None


def test_cifar10_instance_dependent_noise_runs(tmp_path, capsys):
    root = write_cifar10(tmp_path / "data", np.arange(200) % 10)
    results = tmp_path / "runs"
    code, out, err = run_cli(["run", "--dataset", "cifar10", "--data-root", root, "--model", "cnn",
                              "--noise", "inst:0.4", "--epochs", "1", "--results", results, "--device", "cpu"],
                             capsys)
    assert code == 0, err
    assert "inst:0.4 Best" in out
    noise_record = only_trial(results).read_spec()["noise"]
    assert noise_record["kind"] == "inst" and noise_record["transition"] is None
    # Xia et al.'s flip rates are truncated normals around 0.4 (sd 0.1): 200 labels land near it.
    assert 0.25 < noise_record["realised_rate"] < 0.55


def test_missing_cifar10_is_one_line_naming_the_path_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(["run", "--dataset", "cifar10", "--data-root", empty, "--model", "cnn",
                              "--epochs", "1", "--results", tmp_path / "runs"], capsys)
    assert_one_line_error(code, err, str(empty / "cifar-10-batches-py"), "--download")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no results dir either


@pytest.fixture(scope="module")
def cifar10_with_cifar_n_order(tmp_path_factory):
    """A fabricated CIFAR-10 (random pixels) whose 50,000 training labels are CIFAR-10N's
    clean_label, in order, with the real label file beside it under cifar-n/."""
    if not CIFAR10N_FILE.is_file():
        pytest.skip(f"the CIFAR-10N label file is not at {CIFAR10N_FILE}")
    labels = np.asarray(torch.load(CIFAR10N_FILE, weights_only=False)["clean_label"], dtype=np.int64)
    root = write_cifar10(tmp_path_factory.mktemp("cifar10n") / "data", labels)
    (root / "cifar-n").mkdir()
    (root / "cifar-n" / CIFAR10N_FILE.name).symlink_to(CIFAR10N_FILE)
    return root


@pytest.mark.slow
def test_cifar10n_worse_trains_with_the_published_realised_rate(cifar10_with_cifar_n_order, tmp_path, capsys):
    # Slow: it writes and reads 150 MB of pickles and trains one epoch over 50,000 images (the
    # CIFAR-N files index the full training set).  An MLP at batch 1024 keeps that to ~240 GFLOP,
    # seconds on an idle 2-core CPU; a CNN would take minutes.
    results = tmp_path / "runs"
    code, out, err = run_cli(["run", "--dataset", "cifar10", "--data-root", cifar10_with_cifar_n_order,
                              "--noise", "cifar10n:worse", "--model", "mlp", "--epochs", "1", "--batch-size", "1024",
                              "--results", results, "--device", "cpu"], capsys)
    assert code == 0, err
    assert "cifar10n:worse Best" in out and "| standard" in out
    record = only_trial(results).read_spec()
    assert record["num_train"] == 50_000
    # Wei et al. (ICLR 2022): 40.21% of worse_label differ from clean_label (20,104 of 50,000).
    assert record["noise"]["realised_rate"] == pytest.approx(0.4021, abs=5e-5)
    assert record["noise"]["nominal_rate"] == pytest.approx(0.4021)


# ----------------------------------------------------------------------------- streamed Clothing1M

def test_clothing1m_num_train_is_the_stream_length(tmp_path):
    dataset = datasets.load("clothing1m", write_clothing1m(tmp_path / "data", num_train=16))
    assert len(dataset.train_images) == 0
    assert dataset.num_train == 16 == dataset.train_stream.num_images
    assert dataset.image_shape == (3, 224, 224)


def clothing_spec(**changes) -> TrialSpec:
    fields = dict(dataset="clothing1m", method="standard", noise="real", seed=0, protocol="dividemix-paper",
                  model="mlp", epochs=1, batch_size=8)
    fields.update(changes)
    return TrialSpec(**fields)


def test_trainer_takes_streamed_batches_with_labels_by_index(tmp_path):
    root = write_clothing1m(tmp_path / "data", num_train=16, num_test=4)
    setup = setup_trial(clothing_spec(), torch.device("cpu"), root)
    data = setup.data
    assert data.images.shape[0] == 0 and data.num_train == 16
    assert torch.allclose(data.mean.flatten(), torch.tensor([0.6959, 0.6537, 0.6371]))  # DivideMix's
    assert (data.clean == -1).all() and not data.has_clean  # unknown, never a copy of the noisy labels
    trainer = Trainer(setup)
    seen = []
    for batch in trainer.training_batches(0, None):
        assert batch.images.shape[1:] == (3, 224, 224) and batch.images.dtype == torch.float32
        assert torch.equal(batch.labels, data.noisy[batch.index])
        seen.append(batch.index)
    assert sorted(torch.cat(seen).tolist()) == list(range(16))  # 16 < 32,000: the whole list
    # Another epoch: another order (the stream's plan is seeded by the trial and the epoch).
    assert not torch.equal(torch.cat(seen), torch.cat([b.index for b in trainer.training_batches(1, None)]))
    scores = trainer.evaluate()
    assert set(scores) == {"test_acc", "test_acc_per_class"} and 0.0 <= scores["test_acc"] <= 1.0
    per_class = scores["test_acc_per_class"]
    assert len(per_class) == 14  # Clothing1M's classes; None where the test set lacks one
    counts = torch.bincount(trainer.data.test_labels.cpu(), minlength=14).tolist()
    assert all((acc is None) == (n == 0) for acc, n in zip(per_class, counts))
    hits = sum(acc * n for acc, n in zip(per_class, counts) if acc is not None)
    assert hits / sum(counts) == pytest.approx(scores["test_acc"], abs=1e-6)
    logits = trainer.view.predict_train()
    assert logits.shape == (16, 14)


@pytest.mark.slow
def test_clothing1m_trains_one_epoch_end_to_end_with_a_cnn(tmp_path, capsys):
    # 224x224 inputs through the 6-conv CNN: about 10 s of compute for these 20 images on 2 cores.
    root = write_clothing1m(tmp_path / "data", num_train=16, num_test=4)
    results = tmp_path / "runs"
    code, out, err = run_cli(["run", "--dataset", "clothing1m", "--noise", "real", "--data-root", root,
                              "--model", "cnn", "--epochs", "1", "--batch-size", "8", "--results", results,
                              "--device", "cpu"], capsys)
    assert code == 0, err
    assert "protocol dividemix-paper[model=cnn,epochs=1,batch_size=8]" in out and "real Best" in out
    trial = only_trial(results)
    record = trial.read_spec()
    assert record["num_train"] == 16 and record["samples_per_epoch"] == 16
    assert record["noise"]["realised_rate"] is None and record["noise"]["empirical"] is None
    (line,) = trial.read_metrics()
    assert np.isfinite(line["train_loss"]) and 0.0 <= line["test_acc"] <= 1.0
    assert not any("precision" in key or "recall" in key for key in line)


def test_clothing1m_protocol_without_pretrained_weights_is_refused(tmp_path, capsys):
    root = write_clothing1m(tmp_path / "data")
    code, _, err = run_cli(["run", "--dataset", "clothing1m", "--noise", "real", "--data-root", root,
                            "--results", tmp_path / "runs"], capsys)
    assert_one_line_error(code, err, "--pretrained PATH", "dividemix-paper")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("method", ["dividemix", "me_momentum"])
def test_a_method_drawing_subsets_is_refused_on_a_streamed_dataset_before_anything_is_written(tmp_path, capsys,
                                                                                              method):
    root = write_clothing1m(tmp_path / "data")
    code, _, err = run_cli(["run", "--dataset", "clothing1m", "--noise", "real", "--data-root", root,
                            "--methods", method, "--model", "cnn", "--results", tmp_path / "runs"], capsys)
    assert_one_line_error(code, err, f"{method} cannot train on clothing1m", "in-memory dataset")
    assert not (tmp_path / "runs").exists()


def test_streamed_dataset_refuses_a_protocol_needing_its_image_statistics(tmp_path, capsys):
    root = write_clothing1m(tmp_path / "data")
    code, _, err = run_cli(["run", "--dataset", "clothing1m", "--noise", "real", "--data-root", root,
                            "--protocol", "lend-paper", "--results", tmp_path / "runs"], capsys)
    assert_one_line_error(code, err, "lend-paper", "--protocol dividemix-paper")


# ----------------------------------------------------------------------------- no clean labels

def test_dataset_without_clean_labels_reports_no_label_precision(tmp_path, capsys):
    # Co-teaching selects samples: with clean labels that is scored as label precision; Animal-10N has none.
    root = write_animal10n(tmp_path / "data")
    results = tmp_path / "runs"
    code, out, err = run_cli(["run", "--dataset", "animal10n", "--noise", "real", "--methods", "coteaching",
                              "--data-root", root, "--model", "cnn", "--epochs", "1", "--batch-size", "16",
                              "--results", results, "--device", "cpu"], capsys)
    assert code == 0, err
    assert "protocol plc-paper[model=cnn,epochs=1,batch_size=16]" in out
    trial = only_trial(results)
    record = trial.read_spec()
    assert record["noise"]["realised_rate"] is None and record["noise"]["empirical"] is None
    assert record["recipe"]["mean_std"] == [list(IMAGENET_MEAN_STD[0]), list(IMAGENET_MEAN_STD[1])]
    (line,) = trial.read_metrics()
    assert "kept_fraction" in line  # the selection is still reported ...
    assert not any("precision" in key or "recall" in key or "weight_noisy" in key for key in line)  # ... unscored


# ----------------------------------------------------------------------------- --pretrained

@pytest.fixture(scope="module")
def resnet50_state_file(tmp_path_factory):
    """A torchvision ResNet-50 state dict (random init) saved as its ImageNet files are."""
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "resnet50-random.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


def test_resnet50_loads_a_torchvision_state_dict_except_its_head(resnet50_state_file):
    state = read_state_dict(resnet50_state_file)
    net = build_model("resnet50", 14, (3, 224, 224))
    load_pretrained(net, state, "resnet50", resnet50_state_file)
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert loaded["fc.weight"].shape == (14, 2048)  # a fresh head for this dataset's classes
    net.eval()
    logits, features = net(torch.randn(2, 3, 64, 64), return_features=True)
    assert logits.shape == (2, 14) and features.shape == (2, 2048)
    assert torch.allclose(net.fc(features), logits, atol=1e-5)


def test_pretrained_weights_reach_every_network_of_the_trial(tmp_path, resnet50_state_file):
    root = write_clothing1m(tmp_path / "data")
    spec = clothing_spec(method="coteaching", model=None, pretrained=str(resnet50_state_file))
    setup = setup_trial(spec, torch.device("cpu"), root)
    state = read_state_dict(resnet50_state_file)
    networks = setup.method.networks()
    assert len(networks) == 2
    for net in networks:
        assert torch.equal(net.conv1.weight, state["conv1.weight"])
        assert torch.equal(net.layer4[2].bn3.running_var, state["layer4.2.bn3.running_var"])


def test_pretrained_run_records_the_file_and_gets_its_own_hash(tmp_path, capsys):
    root = write_cifar10(tmp_path / "data", np.arange(100) % 10)
    weights = tmp_path / "cnn.pth"
    torch.save(build_model("cnn", 10, (3, 32, 32)).state_dict(), weights)
    results = tmp_path / "runs"
    common = ["run", "--dataset", "cifar10", "--data-root", root, "--model", "cnn", "--epochs", "1",
              "--results", results, "--device", "cpu"]
    code, out, err = run_cli(common + ["--pretrained", weights], capsys)
    assert code == 0, err
    assert "pretrained=cnn.pth" in out  # the table says which weights the row started from
    record = only_trial(results).read_spec()
    assert record["spec"]["pretrained"] == str(weights.resolve())
    assert len(record["pretrained"]["sha256"]) == 64
    without = TrialSpec.from_json({**record["spec"], "pretrained": None})
    assert without.hash != record["hash"]


@pytest.mark.parametrize("case", ["missing", "not-a-state-dict", "other-model"])
def test_unusable_pretrained_file_is_one_line(tmp_path, capsys, resnet50_state_file, case):
    root = write_cifar10(tmp_path / "data", np.arange(100) % 10)
    path = {"missing": tmp_path / "nothing.pth", "not-a-state-dict": tmp_path / "notes.pth",
            "other-model": resnet50_state_file}[case]
    if case == "not-a-state-dict":
        path.write_text("not weights")
    code, _, err = run_cli(["run", "--dataset", "cifar10", "--data-root", root, "--model", "cnn", "--epochs", "1",
                            "--pretrained", path, "--results", tmp_path / "runs"], capsys)
    fragment = {"missing": "no such file", "not-a-state-dict": "not a readable torch file",
                "other-model": "does not fit model cnn"}[case]
    assert_one_line_error(code, err, f"--pretrained {path}", fragment)
    assert not (tmp_path / "runs").exists()


def test_unreadable_state_dict_raises_bench_error(tmp_path):
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(BenchError, match="not a state dict of tensors|not a readable torch file"):
        read_state_dict(tmp_path / "list.pth")


# ----------------------------------------------------------------------------- spec hashes

def test_existing_spec_hashes_are_unchanged_by_the_pretrained_field():
    # Hashes computed before TrialSpec had `pretrained`: stored trials must keep their directories.
    # Those trials were seeded by the legacy scheme, which a spec.json of theirs says by omission.
    plain = TrialSpec(dataset="cifar10", method="lend", noise="sym:0.4", seed=3, protocol="lend-paper",
                      seeding=LEGACY_SEEDING)
    changed = TrialSpec(dataset="digits", method="coteaching", noise="pair:0.45", seed=0, protocol="quick",
                        model="cnn", epochs=5, batch_size=32, hparams=(("forget_rate", "0.2"),), seeding=LEGACY_SEEDING)
    assert plain.hash == "2045f23c0094"
    assert changed.hash == "e5c28c71f835"
    assert "pretrained" not in plain.to_json()
    with_weights = TrialSpec(dataset="cifar10", method="lend", noise="sym:0.4", seed=3, protocol="lend-paper",
                             pretrained="/weights/resnet50.pth", seeding=LEGACY_SEEDING)
    assert with_weights.to_json()["pretrained"] == "/weights/resnet50.pth"
    assert TrialSpec.from_json(with_weights.to_json()) == with_weights
    assert TrialSpec.from_json(plain.to_json()) == plain


# ----------------------------------------------------------------------------- protocols, bench data check

@pytest.mark.parametrize("dataset, protocol, model, mean_std", [
    ("cifar10", "lend-paper", "resnet18", None),
    ("cifar100", "lend-paper", "resnet18", None),
    ("mnist", "jocor-paper", "mlp1", None),
    ("fashion-mnist", "quick", "mlp1", None),
    ("animal10n", "plc-paper", "vgg19_bn", IMAGENET_MEAN_STD),
    ("clothing1m", "dividemix-paper", "resnet50", ((0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214))),
    ("food101n", "plc-paper", "resnet50", IMAGENET_MEAN_STD),
])
def test_each_dataset_has_its_protocol(dataset, protocol, model, mean_std):
    assert default_protocol(dataset) == protocol
    recipe = resolve_recipe(protocol, dataset, "standard")
    assert recipe.model == model and recipe.mean_std == mean_std
    assert recipe.imagenet_init == (dataset in ("clothing1m", "food101n"))


def test_fashion_mnist_recipes():
    quick = resolve_recipe("quick", "fashion-mnist", "standard")
    assert (quick.optimizer, quick.lr, quick.batch_size, quick.epochs, quick.schedule) == ("adam", 1e-3, 128, 50,
                                                                                           "constant")
    assert not quick.augment and not quick.normalize
    # CausalNL's code (../shared/data/published/SOURCE.md): torchvision-layout ResNet-18, Adam 1e-3 without
    # decay, batch 128 with drop_last, 150 epochs, crop + flip of transposed images, ToTensor only.
    causalnl = resolve_recipe("causalnl-paper", "fashion-mnist", "coteaching")
    assert (causalnl.model, causalnl.optimizer, causalnl.lr, causalnl.momentum, causalnl.weight_decay) == (
        "causalnl_resnet18", "adam", 1e-3, 0.9, 0.0)
    assert (causalnl.batch_size, causalnl.drop_last, causalnl.epochs, causalnl.schedule) == (128, True, 150, "constant")
    assert causalnl.augment and causalnl.crop_padding == 4 and causalnl.transpose_images and not causalnl.normalize
    assert resolve_recipe("jocor-paper", "fashion-mnist", "jocor") == resolve_recipe("jocor-paper", "mnist", "jocor")
    # The field added for CausalNL leaves every earlier recipe's JSON, and so every trial id, as it was.
    assert "transpose_images" not in quick.to_json() and causalnl.to_json()["transpose_images"] is True


def test_clothing1m_recipe_is_dividemix():
    recipe = resolve_recipe("dividemix-paper", "clothing1m", "standard")
    assert (recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay) == ("sgd", 0.002, 0.9, 1e-3)
    assert (recipe.batch_size, recipe.epochs, recipe.milestones, recipe.lr_gamma) == (32, 80, (40,), 0.1)


@pytest.fixture
def no_debian_fashion_mnist(tmp_path, monkeypatch):
    """Keep Debian's Fashion-MNIST (present on machines that ran `make data`) out of the check."""
    from noisybench.datasets import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-package")


def test_data_check_lists_every_dataset_and_exits_0(tmp_path, capsys, no_debian_fashion_mnist):
    code, out, err = run_cli(["data", "check", "--data-root", tmp_path], capsys)
    assert code == 0, err
    assert f"data root: {tmp_path}" in out
    for name in ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "animal10n", "clothing1m", "food101n"):
        assert f"  {name} " in out
    assert "1 of 8 datasets ready: digits" in out


def test_data_check_exits_1_on_a_damaged_dataset(tmp_path, capsys, no_debian_fashion_mnist):
    write_animal10n(tmp_path, num_train=3, num_test=1)  # present, but not ANIMAL-10N's 50,000 / 5,000
    code, out, _ = run_cli(["data", "check", "--data-root", tmp_path], capsys)
    assert code == 1
    assert re.search(r"animal10n +damaged", out)
