"""Several trials on one GPU at once: the inline launcher's `bench run --trials-per-gpu K`
(bench/inline.py; and, through bench/speed/packing.py, `bench speed --pack`).

A CIFAR ResNet-18 trial at batch 256 cannot fill a large GPU by itself: its kernels are small, and
between them the GPU waits for Python to launch the next one.  K trials in K processes fill those
gaps.  Processes rather than threads, so that no interpreter lock serialises the launches; each
process has its own CUDA context (the GPU time-slices them; NVIDIA MPS would let their kernels
overlap, and is not needed for correctness).  Every process runs the unchanged
trial function (noisybench.bench.trainer.run_trial) and writes its own trial directory, so the
store stays the only channel back and a packed sweep's numbers are the inline sweep's.

The pools use the ``spawn`` start method: CUDA cannot be used in a forked child of a process that
has touched it.
"""
from __future__ import annotations

import multiprocessing
import os
from typing import Iterator

import torch

from noisybench.core.spec import TrialSpec
from noisybench.results.outcome import TrialOutcome
from noisybench.results.trial_function import TrialFunction

_worker_device: str | None = None  # set in each pool process by _init_trial_worker


def process_devices(device: torch.device) -> list[str]:
    """The devices processes are spread over: every visible GPU for a bare ``cuda``, else the one given."""
    if device.type == "cuda" and device.index is None:
        return [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]
    return [str(device)]


def cpu_threads_per_process(processes: int) -> int:
    """Share the host's cores: K processes with all cores each would oversubscribe them K-fold."""
    return max(1, (os.cpu_count() or 1) // processes)


def _init_trial_worker(counter, devices: list[str], threads: int) -> None:
    global _worker_device
    with counter.get_lock():
        rank = counter.value
        counter.value += 1
    _worker_device = devices[rank % len(devices)]  # K processes per device, round robin
    torch.set_num_threads(threads)


def _run_trial_in_worker(job: tuple) -> tuple[TrialSpec, TrialOutcome]:
    trial_fn, trial, results_root, trial_kwargs = job
    return trial, trial_fn(trial, results_root, device=_worker_device, **trial_kwargs)


def run_trials_packed(trials: list[TrialSpec], results_root, trial_fn: TrialFunction, trial_kwargs: dict, *,
                      trials_per_gpu: int, device: torch.device) -> Iterator[tuple[TrialSpec, TrialOutcome]]:
    """Run ``trial_fn`` on ``trials`` with ``trials_per_gpu`` processes per device; yield (trial, outcome)
    as each ends.  ``trial_fn`` reaches the processes pickled by reference (a module-level function);
    ``trial_kwargs`` are its keyword arguments but the device, which each process has its own of.

    A process takes the next waiting trial when its last one ends, so short and long trials mix.
    """
    devices = process_devices(device)
    processes = min(trials_per_gpu * len(devices), len(trials))
    if processes == 0:
        return
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    kwargs = {k: v for k, v in trial_kwargs.items() if k != "device"}
    jobs = [(trial_fn, trial, str(results_root), kwargs) for trial in trials]
    with context.Pool(processes, initializer=_init_trial_worker,
                      initargs=(counter, devices, cpu_threads_per_process(processes))) as pool:
        yield from pool.imap_unordered(_run_trial_in_worker, jobs, chunksize=1)
