"""What LEND's dilution costs next to the training step it rides on.

    python benchmarks/bench_lend.py --device cuda --model resnet18          # the GPU target: < 10%
    python benchmarks/bench_lend.py --device cpu --model cnn --steps 5

Times, at one batch size (256, the LEND paper's), the median of ``--steps`` repetitions of
  step:    forward (with features) + cross-entropy + backward + SGD step of the model, under bf16
           autocast and channels_last on CUDA, as the shared trainer runs it;
  dilute:  methods.lend.dilute on that forward's features (kNN, affinity, B x B solve, softmax);
and prints dilute / step (on the CPU in process CPU time, which a busy shared machine does not
skew).  Random 32x32 images stand in for CIFAR: neither cost depends on the pixels.
A benchmark, not a test: run it by hand and quote its output.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable without installing

from noisybench.methods.lend import dilute  # noqa: E402
from noisybench.methods.networks import build_model, model_names  # noqa: E402


def timed(fn, device: torch.device, steps: int, warmup: int) -> list[float]:
    """Seconds per call of ``fn``: CUDA calls timed with events after a synchronise; CPU calls by
    the process's CPU time, which other people's load on a shared machine does not inflate (it
    sums all threads: compare at --threads 1 for the compute a single core spends)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            started = time.process_time()
            fn()
            times.append(time.process_time() - started)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--model", default="resnet18", choices=model_names())
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=20, help="timed repetitions (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--solver", default="closed", choices=("closed", "iterate"))
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available here")

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = build_model(args.model, args.classes, (3, 32, 32)).to(device)
    images = torch.rand(args.batch_size, 3, 32, 32, generator=g).to(device)
    labels = torch.randint(0, args.classes, (args.batch_size,), generator=g).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
        autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731 -- fp32, as the trainer
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    net.train()

    def step():
        with autocast():
            logits = net(images, return_features=True)[0]
            loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with torch.no_grad(), autocast():
        features = net(images, return_features=True)[1]
    onehot = F.one_hot(labels, args.classes).float()

    def dilution():
        with autocast():
            dilute(features, onehot, k=args.k, solver=args.solver, iterations=args.iterations)

    step_times = timed(step, device, args.steps, args.warmup)
    dilute_times = timed(dilution, device, args.steps, args.warmup)
    step_s, dilute_s = statistics.median(step_times), statistics.median(dilute_times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {name}, torch {torch.__version__}, model {args.model}, batch {args.batch_size}, "
          f"features {tuple(features.shape)} {features.dtype}, solver {args.solver}, k {args.k}")
    print(f"model step (fwd+bwd+SGD) median {step_s * 1e3:9.2f} ms, min {min(step_times) * 1e3:9.2f} ms over {args.steps}")
    print(f"dilute()                 median {dilute_s * 1e3:9.2f} ms, min {min(dilute_times) * 1e3:9.2f} ms over {args.steps}")
    print(f"dilute / step = {dilute_s / step_s:.2%} (medians), {min(dilute_times) / min(step_times):.2%} (minima)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
