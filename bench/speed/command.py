"""The `bench speed` sub-command."""
from __future__ import annotations

import json
import sys

from noisybench.bench.trainer.arithmetic_flags import add_arithmetic_arguments, arithmetic_options
from noisybench.bench.speed.options import (
    CIFAR_TRAIN_SIZE,
    COMPILE_MODES,
    SHAPES,
    SpeedOptions,
    parse_pack,
)
from noisybench.bench.speed.report import format_report


def cmd_speed(args) -> int:
    from noisybench.bench.speed.measure import run_speed  # torch: only when timing, not for --help
    from noisybench.bench.sweep import split_list

    options = SpeedOptions(
        methods=tuple(split_list(args.methods, "methods")), device=args.device, model=args.model,
        batch_size=args.batch_size, protocol=args.protocol, noise=args.noise, shape=args.shape, steps=args.steps,
        warmup=args.warmup, repeats=args.repeats, epoch=args.epoch, train_size=args.train_size,
        eval_images=args.eval_images, reference=not args.no_reference, reference_workers=args.reference_workers,
        pack=parse_pack(args.pack) if args.pack else (), compile=args.compile,
        precision=None if args.precision == "auto" else args.precision, **arithmetic_options(args),
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
    add_arithmetic_arguments(p)
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
