"""Which device a trial runs on, and a batch's input preparation on one CPU thread (the
arithmetic settings are in arithmetic.py)."""
from __future__ import annotations

import contextlib

import torch

from noisybench.core.errors import BenchError


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchError(f"--device {name}: not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


@contextlib.contextmanager
def single_threaded_on_cpu(device: torch.device):
    """Run a batch's input preparation on one CPU thread.

    Gathering, cropping and normalising a batch are a dozen small memory-bound ops that threads
    do not speed up, yet each multi-threaded op waits for all of torch's threads to be scheduled:
    on a busy CPU (load 13 on 2 cores) that made preparing 64 CIFAR images take 128 ms instead
    of 1.6 ms, and the trainer slower than a DataLoader loop whose workers prepare batches
    single-threaded.  Element-wise ops and gathers give the same bits on any number of threads.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

