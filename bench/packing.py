"""Several trials on one GPU at once: `bench run --trials-per-gpu K` and `bench speed --pack`.

A CIFAR ResNet-18 trial at batch 256 cannot fill a large GPU by itself: its kernels are small, and
between them the GPU waits for Python to launch the next one.  K trials in K processes fill those
gaps.  Processes rather than threads, so that no interpreter lock serialises the launches; each
process has its own CUDA context (the GPU time-slices them; NVIDIA MPS would let their kernels
overlap, and is not needed for correctness).  Every process runs the unchanged
``bench.train.run_trial`` and writes its own trial directory, so the store stays the only channel
back and a packed sweep's numbers are the inline sweep's.

The pools use the ``spawn`` start method: CUDA cannot be used in a forked child of a process that
has touched it.
"""
from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
import traceback
from typing import Iterator

import torch

from bench.spec import TrialSpec

# How long a packed speed process waits at the start line for the others to finish warming up.
START_BARRIER_TIMEOUT_S = 3600.0

_worker_device: str | None = None  # set in each pool process by _init_trial_worker


def process_devices(device: torch.device) -> list[str]:
    """The devices processes are spread over: every visible GPU for a bare ``cuda``, else the one given."""
    if device.type == "cuda" and device.index is None:
        return [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]
    return [str(device)]


def cpu_threads_per_process(processes: int) -> int:
    """Share the host's cores: K processes with all cores each would oversubscribe them K-fold."""
    return max(1, (os.cpu_count() or 1) // processes)


# --------------------------------------------------------------------------------------
# bench run --trials-per-gpu K
# --------------------------------------------------------------------------------------
def _init_trial_worker(counter, devices: list[str], threads: int) -> None:
    global _worker_device
    with counter.get_lock():
        rank = counter.value
        counter.value += 1
    _worker_device = devices[rank % len(devices)]  # K processes per device, round robin
    torch.set_num_threads(threads)


def _run_trial_in_worker(job: tuple) -> tuple[TrialSpec, dict]:
    from bench.train import run_trial

    spec, results_root, data_root, checkpoint_every, feature_epochs = job
    summary = run_trial(spec, results_root, device=_worker_device, data_root=data_root,
                        checkpoint_every=checkpoint_every, feature_epochs=feature_epochs)
    return spec, summary


def run_trials_packed(specs: list[TrialSpec], results_root, *, trials_per_gpu: int, device: torch.device,
                      data_root=None, checkpoint_every: int = 1,
                      feature_epochs: tuple[int, ...] = ()) -> Iterator[tuple[TrialSpec, dict]]:
    """Run ``specs`` with ``trials_per_gpu`` processes per device; yield (spec, summary) as each ends.

    A process takes the next waiting trial when its last one ends, so short and long trials mix.
    """
    devices = process_devices(device)
    processes = min(trials_per_gpu * len(devices), len(specs))
    if processes == 0:
        return
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    jobs = [(spec, str(results_root), data_root, checkpoint_every, tuple(feature_epochs)) for spec in specs]
    with context.Pool(processes, initializer=_init_trial_worker,
                      initargs=(counter, devices, cpu_threads_per_process(processes))) as pool:
        yield from pool.imap_unordered(_run_trial_in_worker, jobs, chunksize=1)


# --------------------------------------------------------------------------------------
# bench speed --pack K,...
# --------------------------------------------------------------------------------------
def _speed_worker(options, method: str, rank: int, device_name: str, threads: int, barrier, reports) -> None:
    """Warm up one trial, wait at the start line for the others, time its steps, report."""
    try:
        torch.set_num_threads(threads)
        from bench.speed import TrainerLoop, synchronize, synthetic_dataset

        device = torch.device(device_name)
        dataset = synthetic_dataset(options.shape, options.train_size, options.eval_images)
        loop = TrainerLoop(method, options, dataset, device, seed=rank)  # its own trial: another seed
        if options.warmup:
            loop.train(options.warmup)
        synchronize(device)
        barrier.wait(timeout=START_BARRIER_TIMEOUT_S)
        started = time.monotonic()  # system-wide on Linux and macOS, so comparable across processes
        seconds, images = loop.time_train(options.steps)
        reports.put({"rank": rank, "start": started, "end": time.monotonic(), "seconds": seconds, "images": images})
    except BaseException:  # noqa: BLE001 -- reported to the parent, which stops the others
        barrier.abort()
        reports.put({"rank": rank, "error": traceback.format_exc()})


def _time_processes(options, method: str, device: torch.device, processes: int) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    reports = context.Queue()
    threads = cpu_threads_per_process(processes)
    workers = [context.Process(target=_speed_worker, daemon=True,
                               args=(options, method, rank, str(device), threads, barrier, reports))
               for rank in range(processes)]
    for worker in workers:
        worker.start()
    results: list[dict] = []
    try:
        while len(results) < processes:
            try:
                report = reports.get(timeout=5.0)
            except queue_module.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a packed speed process died with exit code {dead[0].exitcode} "
                                       f"(out of memory with {processes} processes?)") from None
                continue
            if "error" in report:
                raise RuntimeError(f"packed speed process {report['rank']} of {processes} failed:\n{report['error']}")
            results.append(report)
    finally:
        for worker in workers:
            if worker.is_alive() and len(results) < processes:
                worker.terminate()
            worker.join()
    return results


def measure_packing(options, device: torch.device, echo=None) -> list[dict]:
    """Aggregate img/s of K concurrent processes training ``options.methods[0]``, for each K in ``options.pack``.

    Aggregate = all processes' images / (last end - first start) of their timed steps, which
    begin together after every process has warmed up.
    """
    echo = echo or (lambda text: None)
    method = options.methods[0]
    if device.type == "cuda":
        torch.cuda.empty_cache()  # leave the GPU's memory to the packed processes
    rows = []
    for processes in options.pack:
        echo(f"packing: {processes} concurrent processes training {method} ...")
        reports = _time_processes(options, method, device, processes)
        wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
        rows.append({
            "processes": processes, "method": method, "device": str(device),
            "aggregate_img_per_s": sum(r["images"] for r in reports) / wall,
            "per_process_img_per_s": sum(r["images"] / r["seconds"] for r in reports) / processes,
            "threads_per_process": cpu_threads_per_process(processes),
            "wall_s": wall,
        })
        echo(f"packing: {processes} processes: {rows[-1]['aggregate_img_per_s']:,.1f} img/s in all")
    single = next((r for r in rows if r["processes"] == 1), None)
    for row in rows:
        row["gain_vs_one"] = row["aggregate_img_per_s"] / single["aggregate_img_per_s"] if single else None
    return rows
