"""`bench speed`, packed trials and the trainer's step hygiene (CPU; speed itself is not asserted).

- the speed command runs the real trainer and the reference loop for a few steps on a tiny
  synthetic set and returns well-formed JSON;
- the trainer's batched crop+flip and the reference loop's per-sample torchvision transforms
  draw from the same augmentation distribution, and agree pixel for pixel at a fixed offset;
- packed trials (several processes) write the same per-epoch metrics as inline ones;
- no step reads a tensor back to the host or builds one from Python numbers.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from helpers import epoch_metrics
from scipy import stats

from noisybench.bench.cli import main
from noisybench.bench.launch import run_inline, run_packed
from noisybench.bench.packing import cpu_threads_per_process
from noisybench.bench.speed.loops import TrainerLoop
from noisybench.bench.speed.options import SpeedOptions
from noisybench.bench.speed.synthetic import synthetic_dataset
from noisybench.bench.trainer.data import random_crop_flip
from noisybench.core.spec import TrialSpec
from noisybench.methods import method_names

TINY_SPEED = ["speed", "--device", "cpu", "--model", "mlp", "--batch-size", "16", "--train-size", "64",
              "--eval-images", "32", "--steps", "2", "--warmup", "1", "--reference-workers", "0", "--json", "--quiet"]


def run_speed_json(capsys, *extra: str) -> dict:
    assert main(TINY_SPEED + list(extra)) == 0
    return json.loads(capsys.readouterr().out)


def test_speed_command_returns_well_formed_json(capsys):
    result = run_speed_json(capsys, "--methods", "standard,coteaching")
    assert result["device"] == "cpu" and result["model"] == "mlp" and result["batch_size"] == 16
    assert result["train_size"] == 64 and result["test_size"] == 10_000 and result["image_shape"] == [3, 32, 32]
    assert [r["loop"] for r in result["rows"]][1:] == ["standard", "coteaching"]
    reference, standard, coteaching = result["rows"]
    assert reference["kind"] == "reference" and standard["kind"] == coteaching["kind"] == "trainer"
    for row in result["rows"]:
        for key in ("img_per_s", "step_ms", "train_s_per_epoch", "eval_s_per_epoch", "s_per_epoch", "hours_per_trial",
                    "speedup_vs_reference"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["loop"], key)
        assert row["epochs"] == 200  # lend-paper
        assert row["hours_per_trial"] == pytest.approx(200 * row["s_per_epoch"] / 3600)
        assert row["s_per_epoch"] == pytest.approx(row["train_s_per_epoch"] + row["eval_s_per_epoch"])
        assert row["host_syncs_per_step"] is None  # counted on CUDA only
        assert len(row["img_per_s_repeats"]) == 1
    assert reference["speedup_vs_reference"] == pytest.approx(1.0)
    assert standard["cost_vs_standard"] == pytest.approx(1.0) and coteaching["cost_vs_standard"] > 0
    assert reference["cost_vs_standard"] is None
    assert reference["epoch_hook_s"] is None and standard["epoch_hook_s"] >= 0 and coteaching["epoch_hook_s"] >= 0
    assert result["pack"] == []


def test_speed_text_report_names_every_loop(capsys):
    assert main([a for a in TINY_SPEED if a != "--json"] + ["--no-reference"]) == 0
    out = capsys.readouterr().out
    assert "| standard" in out and "img/s" in out and "h per 200-epoch trial" in out
    assert not any(line.startswith("| reference") for line in out.splitlines())


def test_speed_pack_reports_every_process_count(capsys):
    result = run_speed_json(capsys, "--no-reference", "--pack", "1,2")
    assert [p["processes"] for p in result["pack"]] == [1, 2]
    for row in result["pack"]:
        assert row["method"] == "standard" and row["aggregate_img_per_s"] > 0 and row["threads_per_process"] >= 1
    assert result["pack"][0]["gain_vs_one"] == pytest.approx(1.0)


@pytest.mark.parametrize("argv, message", [
    (["--methods", "nosuch"], "unknown method"),
    (["--pack", "1,x"], "--pack"),
    (["--pack", "0"], "--pack"),
    (["--steps", "0"], "--steps"),
    (["--batch-size", "1"], "--batch-size 1: must be at least 2"),
    (["--shape", "svhn"], "--shape"),
    (["--noise", "sym:1.4"], "sym:1.4"),
    (["--epoch", "200"], "--epoch 200"),
])
def test_speed_bad_input_is_one_line(capsys, argv, message):
    assert main(TINY_SPEED + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error:") and message in err and "\n" not in err


def test_the_synthetic_dataset_is_not_a_dataset_users_can_pick():
    import noisybench.datasets as datasets

    dataset = synthetic_dataset("cifar100", train_size=10, test_size=4)
    assert dataset.name == "synthetic-cifar100" and dataset.num_classes == 100
    assert dataset.train_images.shape == (10, 3, 32, 32) and dataset.train_images.dtype == np.uint8
    assert "synthetic-cifar100" not in datasets.dataset_names()


def test_speed_times_the_protocol_recipe_of_the_imitated_dataset():
    """The timed trial is a cifar10 trial on synthetic pixels: lend-paper's recipe, the real trainer."""
    options = SpeedOptions(model="mlp", steps=1, warmup=0, train_size=40, eval_images=8)
    loop = TrainerLoop("standard", options, synthetic_dataset(train_size=40, test_size=8), torch.device("cpu"))
    assert loop.trainer.spec.dataset == "cifar10" and loop.recipe.augment and loop.recipe.batch_size == 256
    assert loop.batch_sizes == [40] and loop.train(3) == 120  # the epoch's order again from its start


# --------------------------------------------------------------------------------------
# The same augmentation as torchvision's per-sample transforms
# --------------------------------------------------------------------------------------
SIZE, PAD = 32, 4


def position_coded_image() -> torch.Tensor:
    """One 1x32x32 image whose pixel (r, c) holds r*32 + c + 1, so a crop reveals its offset (0 = padding)."""
    return (torch.arange(SIZE * SIZE, dtype=torch.int64) + 1).view(1, SIZE, SIZE)


def decode_crop(out: torch.Tensor) -> tuple[int, int, bool]:
    """(row offset, column offset, flipped) of a crop of the padded coded image.

    The centre pixel is never padding for offsets in [0, 8]; its neighbour tells the flip.
    """
    centre, right = int(out[..., 16, 16]), int(out[..., 16, 17])
    row, col = divmod(centre - 1, SIZE)
    flipped = right == centre - 1
    assert flipped or right == centre + 1
    # Unflipped, out[j] = padded[left + j]; flipped, out[j] = padded[left + 31 - j].
    return row + PAD - 16, col + PAD - (15 if flipped else 16), flipped


def test_random_crop_flip_draws_offsets_uniformly_in_0_8_and_flips_half():
    n = 18_000
    images = position_coded_image().expand(n, 1, SIZE, SIZE).contiguous()
    out = random_crop_flip(images, torch.Generator().manual_seed(0), padding=PAD)
    decoded = np.array([decode_crop(o) for o in out])
    rows, cols, flips = decoded[:, 0], decoded[:, 1], decoded[:, 2].astype(bool)
    for offsets in (rows, cols):
        counts = np.bincount(offsets, minlength=9)
        assert offsets.min() == 0 and offsets.max() == 8 and len(counts) == 9
        assert stats.chisquare(counts).pvalue > 1e-3
    assert stats.chisquare(np.bincount(rows * 9 + cols, minlength=81)).pvalue > 1e-3  # independent axes
    assert stats.binomtest(int(flips.sum()), n, 0.5).pvalue > 1e-3


def test_torchvision_per_sample_transforms_draw_the_same_distribution():
    """The reference loop's RandomCrop(32, padding=4) + RandomHorizontalFlip, decoded the same way."""
    n = 4_000
    transform = T.Compose([T.RandomCrop(SIZE, padding=PAD), T.RandomHorizontalFlip()])
    image = position_coded_image()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        decoded = np.array([decode_crop(transform(image)) for _ in range(n)])
    for offsets in (decoded[:, 0], decoded[:, 1]):
        assert set(offsets) == set(range(9))
        assert stats.chisquare(np.bincount(offsets, minlength=9)).pvalue > 1e-3
    assert stats.binomtest(int(decoded[:, 2].sum()), n, 0.5).pvalue > 1e-3


def test_random_crop_flip_matches_torchvision_crop_at_every_offset():
    """Each sample of a batch equals torchvision's crop of the zero-padded image at its own offset."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2_000, 3, SIZE, SIZE), dtype=torch.uint8, generator=gen)
    out = random_crop_flip(images, torch.Generator().manual_seed(2), padding=PAD)
    coded = random_crop_flip(position_coded_image().expand(2_000, 1, SIZE, SIZE).contiguous(),
                             torch.Generator().manual_seed(2), padding=PAD)  # same draws: decode them
    seen = set()
    for image, result, code in zip(images, out, coded):
        top, left, flipped = decode_crop(code)
        expected = TF.crop(TF.pad(image, [PAD]), top, left, SIZE, SIZE)
        if flipped:
            expected = TF.hflip(expected)
        assert torch.equal(result, expected), (top, left, flipped)
        seen.add((top, left, flipped))
    assert len(seen) == 9 * 9 * 2  # every offset and flip was checked


# --------------------------------------------------------------------------------------
# Packed trials
# --------------------------------------------------------------------------------------
def digits_specs() -> list[TrialSpec]:
    return [TrialSpec(dataset="digits", method=method, noise="sym:0.4", seed=seed, protocol="quick", epochs=3)
            for method, seed in (("standard", 0), ("standard", 1), ("coteaching", 0))]


def test_packed_trials_write_the_same_metrics_as_inline_ones(tmp_path):
    specs = digits_specs()
    inline_lines, packed_lines = [], []
    # CPU sums are split over threads, so the last bits of a loss depend on the thread count: give
    # the inline run the count each packed process gets, and the two must agree exactly.
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads_per_process(2))
    try:
        assert run_inline(specs, tmp_path / "inline", device="cpu", echo=inline_lines.append) == {"done": 3, "failed": 0}
    finally:
        torch.set_num_threads(threads)
    counts = run_packed(specs, tmp_path / "packed", trials_per_gpu=2, device="cpu", echo=packed_lines.append)
    assert counts == {"done": 3, "failed": 0}
    for spec in specs:
        inline = epoch_metrics(tmp_path / "inline", spec)
        assert len(inline) == 3
        assert epoch_metrics(tmp_path / "packed", spec) == inline
    # The same progress lines (in the order the trials ended), and the same summary line.
    assert sorted(line.split(": ")[0].split("] ")[1] for line in packed_lines[:3]) == \
        sorted(line.split(": ")[0].split("] ")[1] for line in inline_lines[:3])
    assert {line.split("]")[0] for line in packed_lines[:3]} == {"[1/3", "[2/3", "[3/3"}
    assert packed_lines[3].startswith("3 trials run in") and "2 at a time" in packed_lines[3]
    # A rerun finds everything done and starts no process.
    again = []
    assert run_packed(specs, tmp_path / "packed", trials_per_gpu=2, device="cpu", echo=again.append) == \
        {"done": 3, "failed": 0}
    assert again == ["3 of 3 trials already done in " + str(tmp_path / "packed") + ": skipped"]


@pytest.mark.parametrize("argv, message", [
    (["--trials-per-gpu", "0"], "--trials-per-gpu 0"),
    (["--trials-per-gpu", "2", "--launcher", "local"], "--launcher inline"),
])
def test_bench_run_refuses_bad_trials_per_gpu(tmp_path, capsys, argv, message):
    results = tmp_path / "runs"
    assert main(["run", "--epochs", "1", "--results", str(results)] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not results.exists()


# --------------------------------------------------------------------------------------
# No host round trip inside a step
# --------------------------------------------------------------------------------------
class HostRead(AssertionError):
    pass


@pytest.mark.parametrize("arithmetic", [{}, {"precision": "bf16", "memory_format": "channels_last", "fused": True}],
                         ids=["cpu-default", "gpu-combination"])
@pytest.mark.parametrize("epoch", [0, 20])
@pytest.mark.parametrize("method", method_names())
def test_a_training_step_never_reads_back_or_uploads(monkeypatch, method, epoch, arithmetic):
    """On a GPU each of these is a blocking copy that drains the queue; on the CPU we catch the
    Python calls that would cause one (a boolean-mask index syncs too but is invisible here:
    `bench speed` on a GPU counts every sync per step).  One metrics read per epoch is the design."""
    options = SpeedOptions(model="mlp", batch_size=16, steps=1, warmup=0, train_size=64, eval_images=8, epoch=epoch,
                           **arithmetic)
    loop = TrainerLoop(method, options, synthetic_dataset(train_size=64, test_size=8), torch.device("cpu"))
    reads = []

    def forbidden(name):
        def raise_host_read(*args, **kwargs):
            raise HostRead(f"{name} inside a training step")
        return raise_host_read

    original_tolist = torch.Tensor.tolist
    for name in ("item", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbidden(f"Tensor.{name}"))
    monkeypatch.setattr(torch, "tensor", forbidden("torch.tensor"))
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: reads.append(1) or original_tolist(self))
    loop.train(4)
    assert reads == [1]  # the epoch's single metrics read
