"""How the trainer computes on its device: precision, memory format, fused optimiser, autotuning.

These used to hang on ``device.type == "cuda"``; as explicit settings the CPU can run the GPU's
combination (bf16 autocast, channels_last, fused optimisers), so the GPU path is tested before
it meets a GPU.  The defaults are what each device runs best: on CUDA bf16 autocast,
channels_last, fused optimisers and cuDNN's autotuner; on the CPU fp32, contiguous tensors,
plain optimisers.  Precision changes the numbers, so it is part of the trial's spec
(``TrialSpec.precision``, None = the device's default); the other three change only the speed
(and the rounding of a sum) and are recorded in spec.json.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass

import torch

from noisybench.bench.trainer.arithmetic_flags import MEMORY_FORMATS, PRECISIONS
from noisybench.core.errors import BenchError


@dataclass(frozen=True)
class Arithmetic:
    precision: str = "fp32"  # "bf16": autocast to bfloat16 (the step's matmuls and convolutions); "fp32": none
    memory_format: str = "contiguous"  # of image batches and conv networks
    fused: bool = False  # fused SGD/Adam kernels (one launch for every parameter)
    autotune: bool = False  # cuDNN's autotuner (torch.backends.cudnn.benchmark)

    @classmethod
    def resolve(cls, device: torch.device, precision: str | None = None, memory_format: str | None = None,
                fused: bool | None = None, autotune: bool | None = None) -> "Arithmetic":
        """The settings of a run on ``device``: each one given, else the device's default."""
        gpu = device.type == "cuda"
        settings = cls(precision=precision or ("bf16" if gpu else "fp32"),
                       memory_format=memory_format or ("channels_last" if gpu else "contiguous"),
                       fused=gpu if fused is None else fused, autotune=gpu if autotune is None else autotune)
        settings.check(device)
        return settings

    def check(self, device: torch.device) -> None:
        """Refuse, in one line, what this torch cannot do on this device."""
        if self.precision not in PRECISIONS:
            raise BenchError(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)}")
        if self.memory_format not in MEMORY_FORMATS:
            raise BenchError(f"--memory-format {self.memory_format}: choose one of {', '.join(MEMORY_FORMATS)}")
        if self.precision == "bf16":
            try:
                # Only whether this torch can build the context is asked here: its warning that CUDA is
                # absent (resolving for cuda on a CPU machine) is not this check's to print.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        pass
            except (RuntimeError, ValueError) as err:
                raise BenchError(f"--precision bf16: torch {torch.__version__} has no bf16 autocast on "
                                 f"{device.type} ({' '.join(str(err).split())[:120]}); use --precision fp32") from None
        if self.autotune and device.type != "cuda":
            raise BenchError(f"--autotune on: cuDNN's autotuner needs a CUDA device, not {device}; use --autotune off")

    @property
    def channels_last(self) -> bool:
        return self.memory_format == "channels_last"

    def autocast(self, device: torch.device):
        """The context every forward pass runs in."""
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def to_json(self) -> dict:
        return asdict(self)
