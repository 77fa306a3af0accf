"""What `bench speed` measures: its options, resolved for a device, and checked."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from noisybench.core.errors import BenchError

if TYPE_CHECKING:  # torch is imported when timing starts, not by `bench --help`
    import torch

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
    # The trainer's arithmetic (bench/trainer/arithmetic.py); None: the device's default.
    precision: str | None = None
    memory_format: str | None = None
    fused: bool | None = None
    autotune: bool | None = None

    def resolved(self, device: torch.device) -> "SpeedOptions":
        on_gpu = device.type == "cuda"
        return dataclasses.replace(
            self,
            steps=self.steps if self.steps is not None else (50 if on_gpu else 4),
            warmup=self.warmup if self.warmup is not None else (10 if on_gpu else 1),
        )


def resolve_options(options: SpeedOptions) -> tuple[SpeedOptions, torch.device]:
    """Check every option before anything is built (one-line errors) and fill the defaults."""
    import torch

    import noisybench.noise as noise
    from noisybench.bench.trainer.protocols import check_protocol_name
    from noisybench.bench.trainer.device import resolve_device
    from noisybench.methods import get_method
    from noisybench.methods.networks import check_model_name

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


def parse_pack(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise BenchError(f"--pack {text}: expected comma-separated process counts, e.g. --pack 1,2,4,8") from None
