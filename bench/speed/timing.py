"""Wall-clock timing that waits for the device, and counting host syncs."""
from __future__ import annotations

import time
import warnings

import torch


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
