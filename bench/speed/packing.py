"""`bench speed --pack K,...`: the aggregate speed of K concurrent trial processes on one device."""
from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
import traceback

import torch

from noisybench.bench.packing import cpu_threads_per_process
from noisybench.bench.speed.loops import TrainerLoop
from noisybench.bench.speed.synthetic import synthetic_dataset
from noisybench.bench.speed.timing import synchronize

# How long a packed speed process waits at the start line for the others to finish warming up.
START_BARRIER_TIMEOUT_S = 3600.0


def _speed_worker(options, method: str, rank: int, device_name: str, threads: int, barrier, reports) -> None:
    """Warm up one trial, wait at the start line for the others, time its steps, report."""
    try:
        torch.set_num_threads(threads)
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
