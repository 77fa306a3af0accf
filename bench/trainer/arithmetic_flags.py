"""The command-line flags of the trainer's arithmetic (bench/trainer/arithmetic.py), without torch:
`bench --help` and the parsers of `bench run` and `bench speed` are built from these."""
from __future__ import annotations

from noisybench.core.errors import BenchError

PRECISIONS = ("bf16", "fp32")
MEMORY_FORMATS = ("channels_last", "contiguous")
SWITCHES = {"on": True, "off": False}


def parse_switch(text: str | None, flag: str) -> bool | None:
    """``auto`` -> None (the device's default), ``on``/``off`` -> True/False."""
    if text in (None, "auto"):
        return None
    if text not in SWITCHES:
        raise BenchError(f"{flag} {text}: choose auto, on or off")
    return SWITCHES[text]


def arithmetic_options(args) -> dict:
    """The run settings of the command line (the trial function's keyword arguments)."""
    return {"memory_format": None if args.memory_format == "auto" else args.memory_format,
            "fused": parse_switch(args.fused, "--fused"), "autotune": parse_switch(args.autotune, "--autotune")}


def add_arithmetic_arguments(p) -> None:
    p.add_argument("--precision", choices=("auto",) + PRECISIONS, default="auto",
                   help="bf16 autocast or fp32 (default auto: bf16 on CUDA, fp32 on the CPU; part of the trial's spec)")
    p.add_argument("--memory-format", choices=("auto",) + MEMORY_FORMATS, default="auto",
                   help="of image batches and networks (default auto: channels_last on CUDA, contiguous on the CPU)")
    p.add_argument("--fused", choices=("auto", "on", "off"), default="auto",
                   help="fused optimiser kernels (default auto: on with CUDA, off on the CPU)")
    p.add_argument("--autotune", choices=("auto", "on", "off"), default="auto",
                   help="cuDNN's autotuner (default auto: on with CUDA; CUDA only)")
