"""One prepared check of noisybench on a device: tests, speed, packing, LEND's cost, bf16, and
real `bench run` trials with a kill and resume -- each step in its own time-limited subprocess.

    benchmarks/device_check.sh [--device cuda|cpu] [--tiny] [--out DIR]

Run it through device_check.sh, which makes ``noisybench.*`` importable from the checkout (and
unpacks carried wheels) first.  Writes DIR/device_check.json (everything) and
DIR/device_check.md (a readable summary); exits 0 when every step passed, 1 otherwise.

On a GPU (the default) the steps are budgeted to finish in under 8 minutes on an H200 (see
--budget); ``--device cpu --tiny`` runs the same steps on a tiny model and small sizes in a
couple of minutes, which is how this script is tested before a GPU is in sight.  Every figure
written is one this run measured, labelled with the device it was measured on.

This file is the driver: the command line, the steps in order, each under its time limit and the
overall budget, and the two files written at the end.  Beside it, one job each:
device_config.py (paths, methods, sizes), device_runner.py (a step's time-limited commands),
device_steps.py (environment, GPU tests, speed, packing, LEND, precision), device_trials.py (the
real `bench run` trials) and device_report.py (device_check.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the check's modules beside it, not a package
from device_config import GPU, PYTHON, ROOT, TINY  # noqa: E402
from device_report import render_markdown  # noqa: E402
from device_runner import Clock, Step, kill_all_groups, log  # noqa: E402
from device_steps import step_environment, step_lend, step_pack, step_precision, step_pytest, step_speed  # noqa: E402
from device_trials import step_fashion, step_resume, step_trainer  # noqa: E402

STEPS = [
    ("environment", "Environment", step_environment),
    ("pytest", "pytest -m gpu", step_pytest),
    ("fashion", "bench run: real Fashion-MNIST, standard and Co-teaching, timed per epoch", step_fashion),
    ("speed", "bench speed: every method (trainer vs the papers' DataLoader loop)", step_speed),
    ("pack", "bench speed --pack: K concurrent trials on one device", step_pack),
    ("lend", "LEND's dilution vs a training step (benchmarks/bench_lend.py)", step_lend),
    ("precision", "bf16 vs fp32 (bench speed --precision, standard)", step_precision),
    ("trainer", "bench run: 3 epochs of every method on synthetic CIFAR-10, table, verify", step_trainer),
    ("resume", "bench run: SIGKILL after a checkpoint, rerun, resumed", step_resume),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--tiny", action="store_true", help="a tiny model and small sizes (the CPU test)")
    p.add_argument("--out", default=os.environ.get("OUT") or "device_check_out",
                   help="where device_check.json and device_check.md go (default $OUT, else ./device_check_out)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for all steps together (default 460 at full size, none with --tiny)")
    p.add_argument("--steps", default=None, help="comma-separated subset of steps to run (default all): "
                   + ",".join(name for name, _, _ in STEPS))
    args = p.parse_args(argv)
    sizes = TINY if args.tiny else GPU
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.steps.split(",") if args.steps else [name for name, _, _ in STEPS]
    unknown = set(wanted) - {name for name, _, _ in STEPS}
    if unknown:
        p.error(f"--steps: unknown {', '.join(sorted(unknown))}")
    clock = Clock(args.budget if args.budget is not None else sizes["budget"])

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    report = {"device": args.device, "tiny": args.tiny, "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "budget_s": clock.budget, "root": str(ROOT), "python": PYTHON, "steps": [], "environment": {},
              "passed": False, "total_seconds": 0.0}
    work = Path(tempfile.mkdtemp(prefix="nb-device-check-"))
    logdir = work / "logs"
    logdir.mkdir()
    log(f"device {args.device}{' --tiny' if args.tiny else ''}; budget "
        f"{'none' if clock.budget is None else f'{clock.budget:.0f} s'}; writing {out}/device_check.{{json,md}}")
    try:
        for index, (name, title, function) in enumerate(STEPS, start=1):
            if name not in wanted:
                continue
            step = Step(name, title, sizes["limits"][name], clock, args.device, logdir)
            log(f"step {index}/{len(STEPS)} {name}: {title}")
            started = time.monotonic()
            status = "ok"
            if step.time_left() < 5:
                status = "skipped"
                step.problems.append(f"skipped: the {clock.budget:.0f} s budget was spent "
                                     f"({clock.elapsed():.0f} s elapsed)")
            else:
                try:
                    if name in ("trainer", "resume", "fashion"):
                        function(step, args, sizes, work)
                    else:
                        function(step, args, sizes)
                except KeyboardInterrupt:
                    step.problems.append("interrupted")
                    status = "interrupted"
                except Exception:  # noqa: BLE001 -- this script's own failure, recorded; the others go on
                    step.problems.append("device_check.py raised:\n" + traceback.format_exc())
                    status = "error"
                finally:
                    for record in step.commands:  # a command cut short by an exception
                        if "_proc" in record:
                            step.finish(record)
                if status == "ok" and step.problems:
                    status = "timeout" if any(c.get("timed_out") for c in step.commands) else "failed"
            record = step.to_json(status, time.monotonic() - started)
            report["steps"].append(record)
            if name == "environment":
                report["environment"] = step.results
            log(f"step {name}: {status} in {record['seconds']:.1f} s (elapsed {clock.elapsed():.1f} s)"
                + "".join(f"\n    {line}" for p_ in step.problems for line in p_.splitlines()[:3]))
            if status == "interrupted":
                break
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        kill_all_groups()
        report["total_seconds"] = round(clock.elapsed(), 2)
        done = {s["name"] for s in report["steps"]}
        report["passed"] = (all(s["status"] == "ok" for s in report["steps"])
                            and all(name in done for name in wanted))
        (out / "device_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        (out / "device_check.md").write_text(render_markdown(report))
        shutil.rmtree(work, ignore_errors=True)
        log(f"{'PASSED' if report['passed'] else 'FAILED'} in {report['total_seconds']:.1f} s; "
            f"wrote {out / 'device_check.json'} and {out / 'device_check.md'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
