"""`bench speed`: how fast the shared trainer runs a trial, beside the loop research code uses.

Each requested method trains the real model through the real code path -- ``setup_trial`` and
``Trainer.train_epoch(max_steps=...)`` -- on synthetic data of a real dataset's shape (CIFAR:
50,000 training images of 3x32x32 uint8), and its test evaluation is ``Trainer.evaluate``.  In
the same run, a plain reference loop trains the protocol's model the way the seed papers' code
does: a torch DataLoader with per-sample torchvision ``RandomCrop(32, padding=4)`` and
``RandomHorizontalFlip``, fp32, ``loss.item()`` after every step.  Both see the same images,
model, optimiser, batch size and augmentation distribution, so their ratio is the speed-up the
trainer's design buys, not a cheaper recipe.

The synthetic dataset is built in memory here and never registered: `bench run` cannot pick it.
Step time does not depend on pixel values or labels, so random ones time the real thing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import BenchError

CIFAR_TRAIN_SIZE = 50_000
CIFAR_TEST_SIZE = 10_000
CIFAR_IMAGE_SHAPE = (3, 32, 32)
# The real datasets whose shape `bench speed` can imitate, with their number of classes.  The
# trial's recipe is resolved for this name, so the protocol picks the recipe it would on the real set.
SHAPES = {"cifar10": 10, "cifar100": 100}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class SpeedOptions:
    """What `bench speed` measures (the command line's options, as plain picklable data)."""

    methods: tuple[str, ...] = ("standard",)
    device: str = "auto"
    model: str | None = None  # None: the protocol's model (ResNet-18 under lend-paper)
    batch_size: int | None = None  # None: the protocol's batch size
    protocol: str = "lend-paper"
    noise: str = "sym:0.4"
    shape: str = "cifar10"
    steps: int | None = None  # None: 50 on a GPU, 4 on the CPU
    warmup: int | None = None  # None: 10 on a GPU, 1 on the CPU
    repeats: int = 1
    epoch: int = 20  # the 0-based epoch whose steps are timed
    train_size: int = CIFAR_TRAIN_SIZE
    eval_images: int = 2048
    reference: bool = True
    reference_workers: int = min(4, os.cpu_count() or 1)
    pack: tuple[int, ...] = ()
    compile: str | None = None  # a torch.compile mode for the trainer's networks; None: eager, as bench run

    def resolved(self, device: torch.device) -> "SpeedOptions":
        on_gpu = device.type == "cuda"
        return dataclasses.replace(
            self,
            steps=self.steps if self.steps is not None else (50 if on_gpu else 4),
            warmup=self.warmup if self.warmup is not None else (10 if on_gpu else 1),
        )


def synthetic_dataset(shape: str = "cifar10", train_size: int = CIFAR_TRAIN_SIZE,
                      test_size: int = CIFAR_TEST_SIZE, seed: int = 0):
    """Uniform random uint8 images and labels with the shape of ``shape``'s dataset, in memory."""
    from datasets.registry import Dataset

    num_classes = SHAPES[shape]
    rng = np.random.default_rng(seed)
    return Dataset(
        name=f"synthetic-{shape}",
        train_images=rng.integers(0, 256, size=(train_size, *CIFAR_IMAGE_SHAPE), dtype=np.uint8),
        train_labels=rng.integers(0, num_classes, size=train_size).astype(np.int64),
        test_images=rng.integers(0, 256, size=(test_size, *CIFAR_IMAGE_SHAPE), dtype=np.uint8),
        test_labels=rng.integers(0, num_classes, size=test_size).astype(np.int64),
        class_names=tuple(f"class{i}" for i in range(num_classes)),
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn):
    """(seconds, result) of ``fn()``, with the device's queue drained before and after, so the
    time is the work's and not just its launch."""
    synchronize(device)
    started = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - started, result


def count_host_syncs(device: torch.device, fn) -> int | None:
    """How many synchronising CUDA calls ``fn`` makes (torch's sync debug mode); None off CUDA."""
    if device.type != "cuda":
        fn()
        return None
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


# --------------------------------------------------------------------------------------
# The shared trainer
# --------------------------------------------------------------------------------------
class TrainerLoop:
    """One method's trial, ready to run steps of one epoch through ``Trainer.train_epoch``."""

    kind = "trainer"

    def __init__(self, method: str, options: SpeedOptions, dataset, device: torch.device, seed: int = 0):
        from bench.spec import TrialSpec
        from bench.train import Trainer, lr_and_beta1, set_lr, setup_trial

        self.name = method
        self.device = device
        spec = TrialSpec(dataset=options.shape, method=method, noise=options.noise, seed=seed,
                         protocol=options.protocol, model=options.model, batch_size=options.batch_size)
        self.trainer = Trainer(setup_trial(spec, device, dataset=dataset))
        if options.compile:
            # In place (Module.compile): state_dict keys, hence checkpoints, stay as in eager mode.
            # Compiling happens in the warm-up steps and the first evaluation, both untimed.
            for network in self.trainer.method.networks():
                network.compile(mode=None if options.compile == "default" else options.compile)
        self.recipe = self.trainer.recipe
        self.batch_size = self.recipe.batch_size
        # The timed epoch: past every method's warm-up by default (LEND's 10 epochs of plain
        # labels, Co-teaching's forget-rate ramp), so its steps are the ones most epochs run.
        if options.epoch >= self.recipe.epochs:
            raise BenchError(f"--epoch {options.epoch}: a {method} trial of this protocol has epochs 0.."
                             f"{self.recipe.epochs - 1}; pick one of them")
        self.epoch = options.epoch
        self.trainer.epoch = self.epoch
        # What Trainer.run does before an epoch's steps (a method may build state here).  Its
        # time is reported apart: a phase method's hook (self-learning's prototype election,
        # GCE's pruning pass) embeds or predicts the whole training set, on some epochs only.
        synchronize(device)
        started = time.perf_counter()
        self.trainer.method.on_epoch_start(self.epoch, self.trainer.view)
        synchronize(device)
        self.hook_seconds = time.perf_counter() - started
        set_lr(self.trainer.optimizer, *lr_and_beta1(self.recipe, self.epoch))
        self.samples_per_epoch = int(self.trainer.data.train_idx.numel())
        # The sizes of one epoch's batches (every epoch's order has the same), counted here so
        # the timed steps do not pay for counting.
        self.batch_sizes = [int(b.shape[0]) for b in self.trainer.batch_order(self.epoch)]
        self.num_val = int(self.trainer.data.val_idx.numel())
        self.epochs = int(getattr(self.trainer, "max_epochs", self.recipe.epochs))
        self.host_syncs_per_step: float | None = None

    def train(self, steps: int) -> int:
        """Run ``steps`` steps of the timed epoch (its order again from the start when more steps
        are asked than it has, so a method never sees an epoch past its schedule); images seen."""
        done = images = 0
        while done < steps:
            chunk = min(steps - done, len(self.batch_sizes))
            self.trainer.train_epoch(self.epoch, max_steps=chunk)
            done += chunk
            images += sum(self.batch_sizes[:chunk])
        return images

    def warm_up(self, steps: int) -> None:
        if self.device.type == "cuda" and steps >= 4:
            # The first steps pick cuDNN's kernels (which syncs); then count the syncs of one
            # step and of two, each call with its epoch's own (the batch order upload, the one
            # metrics read), so the difference is what one step adds: a step that syncs stalls
            # the GPU's queue every time.
            self.train(steps - 3)
            one = count_host_syncs(self.device, lambda: self.train(1))
            two = count_host_syncs(self.device, lambda: self.train(2))
            self.host_syncs_per_step = float(two - one)
        elif steps > 0:
            self.train(steps)
        synchronize(self.device)

    def time_train(self, steps: int) -> tuple[float, int]:
        return timed(self.device, lambda: self.train(steps))

    def time_eval(self) -> tuple[float, int]:
        seconds, _ = timed(self.device, self.trainer.evaluate)
        return seconds, int(self.trainer.data.test_images.shape[0]) + self.num_val


# --------------------------------------------------------------------------------------
# The reference: what the seed papers' training scripts do
# --------------------------------------------------------------------------------------
class PerSampleTransformDataset(torch.utils.data.Dataset):
    """Images one at a time through torchvision transforms, as the papers' CIFAR datasets do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def reference_transforms(mean: torch.Tensor, std: torch.Tensor, augment: bool):
    import torchvision.transforms as T

    # On uint8 tensors rather than PIL images: the same crops and flips, and cheaper than
    # ToTensor() on PIL, so the reference is if anything faster than the papers' code.
    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    steps += [T.ConvertImageDtype(torch.float32), T.Normalize(mean.tolist(), std.tolist())]
    return T.Compose(steps)


class ReferenceLoop:
    """Plain training of the protocol's model: DataLoader, per-sample transforms, fp32, .item()."""

    kind = "reference"

    def __init__(self, options: SpeedOptions, dataset, device: torch.device, mean: torch.Tensor,
                 std: torch.Tensor):
        from bench.models import build_model
        from bench.protocols import resolve_recipe

        self.device = device
        self.workers = options.reference_workers
        recipe = resolve_recipe(options.protocol, options.shape, "standard", model=options.model,
                                batch_size=options.batch_size)
        self.recipe, self.batch_size = recipe, recipe.batch_size
        self.name = f"reference ({self.workers} DataLoader workers)"
        self.epochs = recipe.epochs
        self.samples_per_epoch = dataset.num_train
        self.num_val = 0
        self.host_syncs_per_step = None
        self.hook_seconds = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model = build_model(recipe.model, dataset.num_classes, dataset.image_shape).to(device)
        if recipe.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                             weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        images = torch.from_numpy(dataset.train_images)
        labels = torch.from_numpy(dataset.train_labels)
        mean, std = mean.flatten().cpu(), std.flatten().cpu()
        train_set = PerSampleTransformDataset(images, labels, reference_transforms(mean, std, recipe.augment))
        test_set = PerSampleTransformDataset(torch.from_numpy(dataset.test_images),
                                             torch.from_numpy(dataset.test_labels),
                                             reference_transforms(mean, std, augment=False))
        shuffle_generator = torch.Generator().manual_seed(0)
        self.train_loader = torch.utils.data.DataLoader(train_set, batch_size=self.batch_size, shuffle=True,
                                                        num_workers=self.workers, generator=shuffle_generator)
        self.test_loader = torch.utils.data.DataLoader(test_set, batch_size=self.batch_size,
                                                       num_workers=self.workers)
        self.batches = self._endless_batches()

    def _endless_batches(self):
        while True:  # a new epoch restarts the workers, as in the papers' loops
            yield from self.train_loader

    def train(self, steps: int) -> int:
        self.model.train()
        images = 0
        running_loss = 0.0
        for _ in range(steps):
            x, y = next(self.batches)
            x, y = x.to(self.device), y.to(self.device)
            loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            running_loss += loss.item()  # the papers log every step, a host sync each time
            images += int(y.shape[0])
        return images

    def warm_up(self, steps: int) -> None:
        if steps > 0:
            self.train(steps)
        synchronize(self.device)

    def time_train(self, steps: int) -> tuple[float, int]:
        return timed(self.device, lambda: self.train(steps))

    def time_eval(self) -> tuple[float, int]:
        self.model.eval()
        seconds, _ = timed(self.device, self.evaluate)
        return seconds, len(self.test_loader.dataset)

    def evaluate(self) -> int:
        """Correct test predictions, counted with `.item()` per batch as the papers' scripts do."""
        correct = 0
        with torch.no_grad():
            for x, y in self.test_loader:
                x, y = x.to(self.device), y.to(self.device)
                correct += (self.model(x).argmax(dim=1) == y).sum().item()
        return correct


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------
def resolve_options(options: SpeedOptions) -> tuple[SpeedOptions, torch.device]:
    """Check every option before anything is built (one-line errors) and fill the defaults."""
    import noise
    from bench.models import check_model_name
    from bench.protocols import check_protocol_name
    from bench.train import resolve_device
    from methods import get_method

    device = resolve_device(options.device)
    if not options.methods:
        raise BenchError("--methods is empty; give a comma-separated list, e.g. --methods standard,coteaching")
    for method in options.methods:
        get_method(method)
    check_protocol_name(options.protocol)
    noise.parse_noise(options.noise)
    if options.model is not None:
        check_model_name(options.model)
    if options.shape not in SHAPES:
        raise BenchError(f"--shape {options.shape}: choose one of {', '.join(SHAPES)}")
    checks = [("batch-size", options.batch_size, 2), ("steps", options.steps, 1), ("warmup", options.warmup, 0),
              ("repeats", options.repeats, 1), ("train-size", options.train_size, 2),
              ("eval-images", options.eval_images, 1), ("epoch", options.epoch, 0),
              ("reference-workers", options.reference_workers, 0)]
    for flag, value, least in checks:
        if value is not None and value < least:
            raise BenchError(f"--{flag} {value}: must be at least {least}")
    if any(k < 1 for k in options.pack):
        raise BenchError(f"--pack {','.join(map(str, options.pack))}: process counts must be at least 1, e.g. 1,2,4,8")
    if device.type == "cuda" and options.pack and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return options.resolved(device), device


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
    from bench.packing import measure_packing
    from bench.protocols import resolve_recipe

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


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------
def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def format_report(result: dict) -> str:
    from tabulate import tabulate

    head = (f"bench speed: synthetic {result['dataset_shape']} ({result['train_size']:,} training images of "
            f"{'x'.join(map(str, result['image_shape']))} uint8, {result['num_classes']} classes), "
            f"{result['model']}, batch {result['batch_size']}, protocol {result['protocol']}\n"
            f"device {result['device_name']}, torch {result['torch']}; {result['steps']} timed steps of epoch "
            f"{result['timed_epoch'] + 1} after {result['warmup']} warm-up steps, best of {result['repeats']}; "
            f"evaluation timed on {result['eval_images_timed']:,} test images, scaled to {result['test_size']:,}"
            + (f"; trainer networks torch.compile'd (mode {result['compile']})" if result["compile"] else ""))
    table = [[r["loop"], _fmt(r["img_per_s"], ",.1f"), _fmt(r["step_ms"], ",.1f"), _fmt(r["s_per_epoch"], ",.2f"),
              _fmt(r["eval_s_per_epoch"], ",.2f"), _fmt(r["hours_per_trial"], ",.2f"),
              _fmt(r["speedup_vs_reference"], ".2f"), _fmt(r["cost_vs_standard"], ".2f"),
              _fmt(r["host_syncs_per_step"], ".1f"), _fmt(r["epoch_hook_s"], ",.2f")] for r in result["rows"]]
    epochs = sorted({r["epochs"] for r in result["rows"]})
    headers = ["loop", "img/s", "ms/step", "s/epoch", "of which eval",
               f"h per {'/'.join(map(str, epochs))}-epoch trial", "x reference speed", "x standard's time",
               "host syncs/step", "epoch-start hook s"]
    lines = [head, "", tabulate(table, headers=headers, tablefmt="github")]
    lines.append("(s/epoch = training images / img/s + evaluation.  Not included: the epoch-start hook, timed once "
                 "at the timed epoch, which phase methods run on some epochs only (GCE's pruning passes, "
                 "self-learning's prototype elections, Me-Momentum's confident sets); and checkpoints, "
                 "which `bench run --checkpoint-every N` makes less frequent)")
    if result["pack"]:
        pack_table = [[p["processes"], _fmt(p["aggregate_img_per_s"], ",.1f"), _fmt(p["per_process_img_per_s"], ",.1f"),
                       _fmt(p["gain_vs_one"], ".2f"), p["threads_per_process"]] for p in result["pack"]]
        lines += ["", f"packing: K concurrent processes, each training {result['pack'][0]['method']} "
                      f"(bench run --trials-per-gpu K)", "",
                  tabulate(pack_table, headers=["K", "aggregate img/s", "img/s per process", "x K=1", "CPU threads each"],
                           tablefmt="github")]
    return "\n".join(lines)


def parse_pack(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise BenchError(f"--pack {text}: expected comma-separated process counts, e.g. --pack 1,2,4,8") from None


def cmd_speed(args) -> int:
    from bench.sweep import split_list

    options = SpeedOptions(
        methods=tuple(split_list(args.methods, "methods")), device=args.device, model=args.model,
        batch_size=args.batch_size, protocol=args.protocol, noise=args.noise, shape=args.shape, steps=args.steps,
        warmup=args.warmup, repeats=args.repeats, epoch=args.epoch, train_size=args.train_size,
        eval_images=args.eval_images, reference=not args.no_reference, reference_workers=args.reference_workers,
        pack=parse_pack(args.pack) if args.pack else (), compile=args.compile,
    )
    progress = (lambda text: print(text, file=sys.stderr, flush=True)) if not args.quiet else None
    result = run_speed(options, progress)
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def register_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "speed", help="time the shared trainer on synthetic CIFAR-shaped data beside a plain DataLoader loop",
        description="Trains each method's real model through the real trainer for a fixed number of steps on "
                    "synthetic data of CIFAR's shape and prints img/s, s/epoch and hours per trial beside a "
                    "plain reference loop (DataLoader, per-sample crop+flip, fp32, .item() every step).")
    p.add_argument("--methods", default="standard", help="comma-separated methods to time (default standard)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--model", default=None, help="override the protocol's model (e.g. cnn on a CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="override the protocol's batch size")
    p.add_argument("--protocol", default="lend-paper", help="the recipe timed (default lend-paper)")
    p.add_argument("--noise", default="sym:0.4", help="noise spec of the timed trials (default sym:0.4)")
    p.add_argument("--shape", default="cifar10", choices=sorted(SHAPES), help="the dataset imitated")
    p.add_argument("--steps", type=int, default=None, help="timed steps per loop (default 50 on a GPU, 4 on the CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 on a GPU, 1 on the CPU)")
    p.add_argument("--repeats", type=int, default=1, help="timing rounds over all loops, best kept (default 1)")
    p.add_argument("--epoch", type=int, default=20, help="0-based epoch whose steps are timed (default 20, "
                   "past LEND's and Co-teaching's warm-up)")
    p.add_argument("--train-size", type=int, default=CIFAR_TRAIN_SIZE, help="synthetic training images (default 50000)")
    p.add_argument("--eval-images", type=int, default=2048,
                   help="test images actually evaluated; the estimate scales to CIFAR's 10,000 (default 2048)")
    p.add_argument("--reference-workers", type=int, default=SpeedOptions.reference_workers,
                   help="DataLoader workers of the reference loop (default min(4, CPU cores), the papers use 4)")
    p.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    p.add_argument("--pack", default=None, metavar="K,K,...",
                   help="also time K concurrent training processes on the device, e.g. 1,2,4,8")
    p.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES,
                   help="torch.compile the trainer's networks first (mode default, or reduce-overhead for CUDA "
                        "graphs) to see whether it pays; bench run trains eagerly")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=cmd_speed)
