"""Timing every requested loop and putting the rows together (with their ratios)."""
from __future__ import annotations

import contextlib
import platform

import torch

from noisybench.bench.speed.loops import ReferenceLoop, TrainerLoop
from noisybench.bench.speed.options import (
    CIFAR_IMAGE_SHAPE,
    CIFAR_TEST_SIZE,
    SHAPES,
    SpeedOptions,
    resolve_options,
)
from noisybench.bench.speed.packing import measure_packing
from noisybench.bench.speed.synthetic import synthetic_dataset


def _row(loop, options: SpeedOptions, train_samples: list[tuple[float, int]], eval_seconds: float,
         eval_images: int) -> dict:
    """Throughput and the per-epoch / per-trial estimate of one loop (best of the repeats)."""
    rates = [images / seconds for seconds, images in train_samples]
    img_per_s = max(rates)
    # The real evaluation covers the dataset's whole test set (plus any validation split).
    eval_scale = (CIFAR_TEST_SIZE + loop.num_val) / eval_images
    eval_s = eval_seconds * eval_scale
    train_s = loop.samples_per_epoch / img_per_s
    s_per_epoch = train_s + eval_s
    return {
        "loop": loop.name, "kind": loop.kind, "img_per_s": img_per_s,
        "step_ms": 1000.0 * loop.batch_size / img_per_s,
        "train_s_per_epoch": train_s, "eval_s_per_epoch": eval_s, "s_per_epoch": s_per_epoch,
        "epochs": loop.epochs, "hours_per_trial": loop.epochs * s_per_epoch / 3600.0,
        "host_syncs_per_step": loop.host_syncs_per_step, "epoch_hook_s": loop.hook_seconds,
        "img_per_s_repeats": rates,
    }


@contextlib.contextmanager
def cudnn_autotuner_of(loop):
    """cuDNN's autotuner as each loop has it: on in the trainer, off in the papers' scripts."""
    saved = torch.backends.cudnn.benchmark
    if loop.kind == "reference":
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def measure_loops(options: SpeedOptions, device: torch.device, echo=None) -> list[dict]:
    """Build every loop, warm each up, then time them in turn (``repeats`` rounds, best kept):
    interleaving keeps a neighbour's passing load on a shared machine from favouring one loop."""
    echo = echo or (lambda text: None)
    dataset = synthetic_dataset(options.shape, options.train_size, options.eval_images)
    loops = []
    for method in options.methods:
        echo(f"building {method} ...")
        loops.append(TrainerLoop(method, options, dataset, device))
    if options.reference:
        data = loops[0].trainer.data
        loops.insert(0, ReferenceLoop(options, dataset, device, data.mean, data.std))
    for loop in loops:
        echo(f"warming up {loop.name} ({options.warmup} steps) ...")
        with cudnn_autotuner_of(loop):
            loop.warm_up(options.warmup)
    samples: dict[int, list[tuple[float, int]]] = {i: [] for i in range(len(loops))}
    for repeat in range(options.repeats):
        # Each round starts one loop later, so no loop always runs right after the same neighbour.
        shift = repeat % len(loops)
        for i in list(range(shift, len(loops))) + list(range(shift)):
            loop = loops[i]
            with cudnn_autotuner_of(loop):
                seconds, images = loop.time_train(options.steps)
            samples[i].append((seconds, images))
            echo(f"round {repeat + 1}/{options.repeats}: {loop.name}: {images / seconds:,.1f} img/s")
    rows = []
    for i, loop in enumerate(loops):
        with cudnn_autotuner_of(loop):
            loop.time_eval()  # the first pass picks kernels for the evaluation batch shape
            eval_seconds, eval_images = loop.time_eval()
        rows.append(_row(loop, options, samples[i], eval_seconds, eval_images))
    return rows


def add_ratios(rows: list[dict]) -> None:
    reference = next((r for r in rows if r["kind"] == "reference"), None)
    standard = next((r for r in rows if r["kind"] == "trainer" and r["loop"] == "standard"), None)
    for row in rows:
        row["speedup_vs_reference"] = reference["s_per_epoch"] / row["s_per_epoch"] if reference else None
        row["cost_vs_standard"] = (row["s_per_epoch"] / standard["s_per_epoch"]
                                   if standard and row["kind"] == "trainer" else None)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_speed(options: SpeedOptions, echo=None) -> dict:
    """Measure everything ``options`` asks for and return the machine-readable result."""
    from noisybench.bench.trainer.protocols import resolve_recipe

    options, device = resolve_options(options)
    recipe = resolve_recipe(options.protocol, options.shape, options.methods[0], model=options.model,
                            batch_size=options.batch_size)
    rows = measure_loops(options, device, echo)
    add_ratios(rows)
    result = {
        "device": str(device), "device_name": describe_device(device), "torch": torch.__version__,
        "dataset_shape": options.shape, "train_size": options.train_size, "test_size": CIFAR_TEST_SIZE,
        "eval_images_timed": options.eval_images, "image_shape": list(CIFAR_IMAGE_SHAPE),
        "num_classes": SHAPES[options.shape], "protocol": options.protocol, "model": recipe.model,
        "batch_size": recipe.batch_size, "steps": options.steps, "warmup": options.warmup,
        "repeats": options.repeats, "timed_epoch": options.epoch, "compile": options.compile, "rows": rows, "pack": [],
    }
    if options.pack:
        result["pack"] = measure_packing(options, device, echo)
    return result
