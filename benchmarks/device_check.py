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
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# -P: the checkout root is not put on sys.path, so the code is imported as noisybench.* only,
# as an install would have it (device_check.sh puts the namespace shim on PYTHONPATH).
BENCH = [PYTHON, "-P", "-m", "noisybench.bench.cli"]
METHODS = ("standard", "coteaching", "jocor", "sigua", "gce", "lend", "me_momentum", "self_learning", "elr",
           "elr_plus", "dividemix")  # every built-in method (tests/test_device_check.py holds it to the registry)
# Real images: Fashion-MNIST, read from <checkout>/data/FashionMNIST/raw (copied there from Debian's
# package and carried with the working tree to a machine without it) or Debian's folder.
FASHION_DATA_ROOT = ROOT / "data"
FASHION_HOW_TO = ("make data here (Debian's dataset-fashion-mnist), then mkdir -p data/FashionMNIST/raw && "
                  "cp /usr/share/datasets/fashion-mnist/*.gz data/FashionMNIST/raw/ and carry data/ with the checkout")
TAIL_LINES = 40

# Sizes and time limits.  GPU: the real protocol (ResNet-18, batch 256, 50,000 CIFAR images);
# the limits are ceilings, the overall --budget (default 460 s) is what keeps the run under 8
# minutes: a step that would start past it is skipped (and the check fails), a running command
# is stopped at it.
GPU = {
    "speed_args": [], "pack": "1,2,4,8", "lend_args": ["--model", "resnet18"], "run_args": [],
    "cifar_train": 50_000, "cifar_test": 10_000,
    "limits": {"environment": 60, "pytest": 90, "fashion": 150, "speed": 120, "pack": 120, "lend": 60,
               "precision": 90, "trainer": 270, "resume": 90},
    # Fashion-MNIST under the GPU recipe it has (CausalNL's ResNet-18, 150 epochs), cut to 3 epochs:
    # enough for its seconds per epoch and a sane accuracy, and for the full trial's cost.
    "fashion_args": ["--protocol", "causalnl-paper", "--noise", "inst:0.4", "--epochs", "3"],
    "budget": 460,
}
# Tiny: LeNet-5 rather than the 6-conv `cnn` -- on a shared 2-core CPU `cnn` trains ~30x slower
# (about 110 img/s against 3,200), and 3 epochs of all 8 methods took over 4 minutes with it.
TINY_MODEL = "lenet"
TINY = {
    "speed_args": ["--model", TINY_MODEL, "--train-size", "256", "--eval-images", "64", "--steps", "2",
                   "--warmup", "1", "--batch-size", "32"],
    "pack": "1,2", "lend_args": ["--model", TINY_MODEL, "--batch-size", "32", "--steps", "3", "--warmup", "1"],
    "run_args": ["--model", TINY_MODEL], "cifar_train": 500, "cifar_test": 100,
    "limits": {"environment": 60, "pytest": 120, "fashion": 120, "speed": 120, "pack": 120, "lend": 60,
               "precision": 90, "trainer": 300, "resume": 120},
    "fashion_args": ["--protocol", "quick", "--noise", "sym:0.5", "--epochs", "1"],
    "budget": None,
}

LIVE_GROUPS: set[int] = set()  # process groups of the children still running


def log(text: str) -> None:
    print(f"[device_check] {text}", flush=True)


# ------------------------------------------------------------------------------- processes
def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    LIVE_GROUPS.discard(pgid)


def kill_all_groups() -> None:
    for pgid in list(LIVE_GROUPS):
        kill_group(pgid)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class MemorySampler:
    """Peak memory of a process group while it runs, sampled twice a second: the largest peak
    RSS (VmHWM) of any of its processes and the largest sum of their RSS, from /proc; on CUDA
    also the device-wide memory in use (nvidia-smi), beside what was in use before it started."""

    def __init__(self, pgid: int, gpu: bool):
        self.pgid, self.gpu = pgid, gpu
        self.peak_rss = self.peak_sum = 0
        self.gpu_before = self.gpu_peak = None
        self._stop = threading.Event()
        if gpu:
            self.gpu_before = gpu_memory_used_mib()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        ticks = 0
        while not self._stop.wait(0.5):
            self._sample_proc()
            ticks += 1
            if self.gpu and ticks % 2 == 0:
                used = gpu_memory_used_mib()
                if used is not None:
                    self.gpu_peak = max(self.gpu_peak or 0, used)

    def _sample_proc(self) -> None:
        total = 0
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) != self.pgid:
                    continue
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if ":" in line)
            except (OSError, ValueError, IndexError):
                continue
            hwm = int(fields.get("VmHWM", "0 kB").split()[0])
            rss = int(fields.get("VmRSS", "0 kB").split()[0])
            self.peak_rss = max(self.peak_rss, hwm)
            total += rss
        self.peak_sum = max(self.peak_sum, total)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=5)
        out = {"peak_process_rss_mib": round(self.peak_rss / 1024, 1) if self.peak_rss else None,
               "peak_group_rss_mib": round(self.peak_sum / 1024, 1) if self.peak_sum else None}
        if self.gpu:
            out["gpu_used_mib_before"] = self.gpu_before
            out["gpu_used_mib_peak"] = self.gpu_peak
        return out


def gpu_memory_used_mib() -> float | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                              check=False, capture_output=True, text=True, timeout=10).stdout
        return float(text.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


class Clock:
    """The overall budget: each command gets at most what is left of it."""

    def __init__(self, budget: float | None):
        self.started = time.monotonic()
        self.budget = budget

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return float("inf") if self.budget is None else self.budget - self.elapsed()


class Step:
    """One step's record: its commands, its parsed results, its status."""

    def __init__(self, name: str, title: str, limit: float, clock: Clock, device: str, logdir: Path):
        self.name, self.title, self.device = name, title, device
        self.clock, self.logdir = clock, logdir
        self.deadline = time.monotonic() + min(limit, clock.left())
        self.commands: list[dict] = []
        self.results: dict = {}
        self.problems: list[str] = []
        self.memory: list[dict] = []

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self, cmd: list[str], env: dict | None = None, label: str | None = None) -> tuple[subprocess.Popen, dict]:
        n = len(self.commands)
        out_path, err_path = self.logdir / f"{self.name}-{n}.out", self.logdir / f"{self.name}-{n}.err"
        record = {"command": label or " ".join(cmd), "returncode": None, "seconds": None, "timed_out": False,
                  "_out": out_path, "_err": err_path}
        self.commands.append(record)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
        LIVE_GROUPS.add(proc.pid)
        record["_started"] = time.monotonic()
        record["_proc"] = proc
        record["_memory"] = MemorySampler(proc.pid, gpu=self.device.startswith("cuda"))
        return proc, record

    def finish(self, record: dict, killed: bool = False) -> dict:
        proc = record.pop("_proc")
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_group(proc.pid)  # what it left behind (DataLoader workers, packed trials)
        record["seconds"] = round(time.monotonic() - record.pop("_started"), 2)
        record["returncode"] = proc.returncode
        record["memory"] = record.pop("_memory").stop()
        record["killed_on_purpose"] = killed
        record["stdout"] = Path(record["_out"]).read_text(errors="replace")
        record["stderr"] = Path(record["_err"]).read_text(errors="replace")
        return record

    def run(self, cmd: list[str], env: dict | None = None, label: str | None = None) -> dict:
        """Run ``cmd`` to its end or to the step's time limit; the record has its stdout/stderr."""
        timeout = max(1.0, self.time_left())
        proc, record = self.start(cmd, env, label)
        log(f"  $ {record['command']}  (limit {timeout:.0f} s)")
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            record["timed_out"] = True
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.finish(record)
        log(f"    exit {record['returncode']} in {record['seconds']:.1f} s"
            + (" (TIMED OUT)" if record["timed_out"] else ""))
        if record["timed_out"]:
            self.problems.append(f"timed out after {record['seconds']:.0f} s: {record['command']}")
        elif record["returncode"] != 0:
            self.problems.append(f"exit {record['returncode']}: {record['command']}")
        return record

    def to_json(self, status: str, seconds: float) -> dict:
        commands = []
        for record in self.commands:
            clean = {k: v for k, v in record.items() if not k.startswith("_") and k not in ("stdout", "stderr")}
            failed = record.get("timed_out") or (record.get("returncode") not in (0, None)
                                                 and not record.get("killed_on_purpose"))
            if failed or status != "ok":
                clean["tail"] = tail(record.get("stdout", "") + "\n" + record.get("stderr", ""))
            commands.append(clean)
        return {"name": self.name, "title": self.title, "device": self.device, "status": status,
                "seconds": round(seconds, 2), "commands": commands, "results": self.results,
                "problems": self.problems}


# ------------------------------------------------------------------------------------ steps
ENV_SCRIPT = r"""
import json, os, platform, sys
out = {"python": sys.version.split()[0], "python_executable": sys.executable, "platform": platform.platform(),
       "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
import torch, torchvision
out.update(torch=torch.__version__, torchvision=torchvision.__version__, cuda_build=torch.version.cuda,
           cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           cuda_available=torch.cuda.is_available(), torch_threads=torch.get_num_threads())
if torch.cuda.is_available():
    out["gpu_count"] = torch.cuda.device_count()
    p = torch.cuda.get_device_properties(0)
    out.update(device_name=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 2),
               compute_capability=f"{p.major}.{p.minor}", bf16_supported=torch.cuda.is_bf16_supported())
    x = torch.randn(256, 256, device="cuda")
    out["cuda_matmul_ok"] = bool(torch.isfinite(x @ x).all().item())
else:
    out["device_name"] = "cpu (" + (platform.processor() or platform.machine()) + ")"
import noisybench, noisybench.bench.cli
out["noisybench_path"] = [str(p) for p in noisybench.__path__]
out["noisybench_bench_file"] = noisybench.bench.cli.__file__
try:
    import submitit
    out["submitit"] = submitit.__version__ + " (" + os.path.dirname(submitit.__file__) + ")"
except ImportError as err:
    out["submitit"] = "not importable: " + str(err)
print("DEVICE_CHECK_ENV " + json.dumps(out))
"""


def step_environment(step: Step, args, sizes) -> None:
    record = step.run([PYTHON, "-P", "-c", ENV_SCRIPT], label=f"{PYTHON} -P -c <environment probe>")
    line = next((ln for ln in record["stdout"].splitlines() if ln.startswith("DEVICE_CHECK_ENV ")), None)
    if line is None:
        step.problems.append("the environment probe printed nothing")
        return
    env = json.loads(line.split(" ", 1)[1])
    nvsmi = shutil.which("nvidia-smi")
    if nvsmi:
        try:
            env["nvidia_smi"] = subprocess.run(
                [nvsmi, "--query-gpu=name,driver_version,memory.total,memory.used", "--format=csv,noheader"],
                check=False, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            env["nvidia_smi"] = f"failed: {err}"
    step.results.update(env)
    if args.device.startswith("cuda") and not env.get("cuda_available"):
        step.problems.append(f"--device {args.device}, but torch {env.get('torch')} sees no CUDA device")


PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed|warnings?)")


def step_pytest(step: Step, args, sizes) -> None:
    record = step.run([PYTHON, "-P", "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", "tests/"])
    lines = [ln for ln in record["stdout"].splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    counts = {}
    for number, word in PYTEST_COUNT.findall(last):
        word = {"error": "errors", "warning": "warnings"}.get(word, word)
        counts[word] = int(number)
    step.results.update(last_line=last.strip("= "), counts=counts,
                        skip_reasons=[ln for ln in lines if ln.startswith("SKIPPED")])
    if counts.get("failed") or counts.get("errors"):
        step.problems.append(f"pytest: {last.strip('= ')}")
    if args.device.startswith("cuda") and not counts.get("passed"):
        step.problems.append("no gpu test passed on a CUDA device (all skipped?)")


def speed_command(args, sizes, *extra: str) -> list[str]:
    return [*BENCH, "speed", "--json", "--quiet", "--device", args.device, *sizes["speed_args"], *extra]


def run_json(step: Step, cmd: list[str]) -> dict | None:
    record = step.run(cmd)
    if record["returncode"] != 0:
        return None
    try:
        return json.loads(record["stdout"])
    except json.JSONDecodeError as err:
        step.problems.append(f"output is not JSON ({err})")
        return None


def speed_context(result: dict) -> dict:
    return {k: result.get(k) for k in ("device", "device_name", "torch", "model", "batch_size", "protocol", "steps",
                                        "warmup", "train_size", "eval_images_timed", "timed_epoch")}


def step_speed(step: Step, args, sizes) -> None:
    result = run_json(step, speed_command(args, sizes, "--methods", ",".join(METHODS)))
    if result is None:
        return
    step.results["context"] = speed_context(result)
    rows = []
    for row in result["rows"]:
        rows.append({
            "loop": row["loop"], "kind": row["kind"], "s_per_epoch": row["s_per_epoch"],
            "train_s_per_epoch": row["train_s_per_epoch"], "eval_s_per_epoch": row["eval_s_per_epoch"],
            "img_per_s": row["img_per_s"], "step_ms": row["step_ms"],
            "x_reference_speed": row["speedup_vs_reference"], "x_standard_time": row["cost_vs_standard"],
            "host_syncs_per_step": row["host_syncs_per_step"], "epoch_hook_s": row["epoch_hook_s"],
            "hours_per_trial": row["hours_per_trial"], "epochs": row["epochs"],
            # bench speed's JSON holds no memory figure per loop; see the step's sampled peak instead.
            "peak_memory_mib": row.get("peak_memory_mib"),
        })
    step.results["rows"] = rows
    step.results["peak_memory_note"] = ("bench speed reports no per-loop memory; the command's sampled peak "
                                        "(all loops built in one process) is under memory")
    step.results["memory"] = step.commands[-1]["memory"]
    missing = set(METHODS) - {r["loop"] for r in rows}
    if missing:
        step.problems.append(f"no row for {', '.join(sorted(missing))}")


def step_pack(step: Step, args, sizes) -> None:
    # The reference loop plays no part in packing: --no-reference saves its time.
    result = run_json(step, speed_command(args, sizes, "--methods", "standard", "--pack", sizes["pack"],
                                          "--no-reference"))
    if result is None:
        return
    step.results["context"] = speed_context(result)
    step.results["pack"] = [{k: p.get(k) for k in ("processes", "aggregate_img_per_s", "per_process_img_per_s",
                                                   "gain_vs_one", "threads_per_process", "wall_s")}
                            for p in result["pack"]]
    step.results["memory"] = step.commands[-1]["memory"]
    wanted = [int(k) for k in sizes["pack"].split(",")]
    if [p["processes"] for p in result["pack"]] != wanted:
        step.problems.append(f"packing rows for {[p['processes'] for p in result['pack']]}, expected {wanted}")


LEND_PATTERNS = {
    "header": re.compile(r"^(device .*)$", re.MULTILINE),
    "step_ms": re.compile(r"model step .*?median\s+([\d.]+) ms, min\s+([\d.]+) ms"),
    "dilute_ms": re.compile(r"dilute\(\)\s+median\s+([\d.]+) ms, min\s+([\d.]+) ms"),
    "ratio": re.compile(r"dilute / step = ([\d.]+)% \(medians\), ([\d.]+)% \(minima\)"),
}


def step_lend(step: Step, args, sizes) -> None:
    record = step.run([PYTHON, "-P", "benchmarks/bench_lend.py", "--device", args.device, *sizes["lend_args"]])
    if record["returncode"] != 0:
        return
    text = record["stdout"]
    found = {k: p.search(text) for k, p in LEND_PATTERNS.items()}
    if not all(found.values()):
        step.problems.append("bench_lend.py's output lacks " + ", ".join(k for k, m in found.items() if not m))
        return
    step.results.update(
        header=found["header"].group(1),
        step_ms_median=float(found["step_ms"].group(1)), step_ms_min=float(found["step_ms"].group(2)),
        dilute_ms_median=float(found["dilute_ms"].group(1)), dilute_ms_min=float(found["dilute_ms"].group(2)),
        dilute_over_step_median_pct=float(found["ratio"].group(1)),
        dilute_over_step_min_pct=float(found["ratio"].group(2)),
        timing="CUDA events" if args.device.startswith("cuda") else "process CPU time",
    )


def step_precision(step: Step, args, sizes) -> None:
    rows = {}
    for precision in ("fp32", "bf16"):
        result = run_json(step, speed_command(args, sizes, "--methods", "standard", "--precision", precision,
                                              "--no-reference"))
        if result is None:
            continue
        row = next(r for r in result["rows"] if r["loop"] == "standard")
        step.results.setdefault("context", speed_context(result))
        rows[precision] = {"img_per_s": row["img_per_s"], "s_per_epoch": row["s_per_epoch"],
                           "step_ms": row["step_ms"], "memory": step.commands[-1]["memory"]}
    step.results["rows"] = rows
    if len(rows) == 2:
        step.results["bf16_over_fp32_img_per_s"] = rows["bf16"]["img_per_s"] / rows["fp32"]["img_per_s"]


# -------------------------------------------------------------------------- bench run steps
def write_synthetic_cifar10(root: Path, num_train: int, num_test: int, seed: int = 0) -> None:
    """A CIFAR-10 release in the exact python-pickle format (tests/test_datasets_real.py's
    write_cifar10, datasets/cifar.py): random uint8 pixels, random labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]

    def dump(name: str, content: dict) -> None:
        with open(directory / name, "wb") as handle:
            pickle.dump(content, handle, protocol=2)  # the release's Python 2 pickles

    per_batch = [num_train // 5 + (1 if b < num_train % 5 else 0) for b in range(5)]
    for b, count in enumerate(per_batch, start=1):
        dump(f"data_batch_{b}", {
            b"batch_label": f"training batch {b} of 5".encode(),
            b"labels": rng.integers(0, 10, count).tolist(),
            b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            b"filenames": [f"synthetic_{b}_{i}.png".encode() for i in range(count)],
        })
    dump("test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": rng.integers(0, 10, num_test).tolist(),
                        b"data": rng.integers(0, 256, size=(num_test, 3072), dtype=np.uint8),
                        b"filenames": [f"synthetic_test_{i}.png".encode() for i in range(num_test)]})
    dump("batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch[0], b"num_vis": 3072})


def read_trials(results: Path) -> list[dict]:
    """Every trial directory's method, state, epochs, seconds and per-epoch seconds."""
    trials = []
    for spec_file in sorted(results.glob("*/spec.json")):
        directory = spec_file.parent
        record = json.loads(spec_file.read_text())
        spec = record.get("spec", {})
        metrics = [json.loads(ln) for ln in (directory / "metrics.jsonl").read_text().splitlines() if ln.strip()] \
            if (directory / "metrics.jsonl").exists() else []
        done = json.loads((directory / "done.json").read_text()) if (directory / "done.json").exists() else None
        trials.append({
            "method": spec.get("method"), "dir": directory.name,
            "state": "done" if done else ("failed" if (directory / "failed.json").exists() else "incomplete"),
            # A method may train past the protocol's epochs (Me-Momentum's rounds: epoch_budget in spec.json).
            "epochs": len(metrics), "epoch_budget": record.get("epoch_budget"),
            "end_note": done.get("end_note") if done else None,
            "seconds": done.get("seconds") if done else None,
            "epoch_seconds": [round(m.get("seconds", float("nan")), 3) for m in metrics],
            "test_acc_last_epoch": metrics[-1].get("test_acc") if metrics else None,
            "resumed_from": done.get("resumed_from") if done else None,
        })
    return trials


def run_command(args, sizes, data_root: Path, results: Path, methods) -> list[str]:
    return [*BENCH, "run", "--dataset", "cifar10", "--data-root", str(data_root), "--methods", ",".join(methods),
            "--noise", "sym:0.4", "--seeds", "1", "--epochs", "3", "--results", str(results),
            "--device", args.device, *sizes["run_args"]]


def make_data(step: Step, sizes, work: Path) -> Path:
    data_root = work / "data"
    if not (data_root / "cifar-10-batches-py" / "batches.meta").exists():
        started = time.monotonic()
        write_synthetic_cifar10(data_root, sizes["cifar_train"], sizes["cifar_test"])
        step.results["data_written_s"] = round(time.monotonic() - started, 2)
    step.results["data"] = f"synthetic CIFAR-10 release, {sizes['cifar_train']:,} train / {sizes['cifar_test']:,} test"
    return data_root


def step_trainer(step: Step, args, sizes, work: Path) -> None:
    data_root = make_data(step, sizes, work)
    results = work / "runs-all"
    record = step.run(run_command(args, sizes, data_root, results, METHODS))
    trials = read_trials(results)
    step.results["trials"] = trials
    step.results["run_memory"] = record["memory"]
    missing = set(METHODS) - {t["method"] for t in trials}
    for t in trials:
        # Done, with every epoch of its budget (3, or a method's own multiple of 3) -- or fewer when
        # its own stopping rule ended it, which done.json's end_note says.
        stopped_early = (t["end_note"] or "").startswith("stopped early")
        if t["state"] != "done" or not (t["epochs"] == t["epoch_budget"] or stopped_early):
            step.problems.append(f"{t['method']}: {t['state']} with {t['epochs']} epochs of its "
                                 f"{t['epoch_budget']}-epoch budget")
    if missing:
        step.problems.append(f"no trial directory for {', '.join(sorted(missing))}")
    if step.time_left() <= 1:
        return
    table = step.run([*BENCH, "table", "--results", str(results)])
    step.results["table"] = table["stdout"].strip()
    if step.time_left() <= 1:
        return
    verify = step.run([*BENCH, "verify", "--results", str(results)])
    step.results["verify"] = verify["stdout"].strip()


def step_resume(step: Step, args, sizes, work: Path) -> None:
    data_root = make_data(step, sizes, work)
    results = work / "runs-resume"
    cmd = run_command(args, sizes, data_root, results, ["standard"])
    proc, record = step.start(cmd)
    log(f"  $ {record['command']}  (to be killed after its first checkpoint)")
    # Killed once metrics.jsonl has a line AND checkpoint.pt exists: the trainer appends the
    # metrics line before it writes the checkpoint (bench/trainer/loop.py), and a kill in between
    # resumes -- by design -- from epoch 0, which would not show a resume.
    killed_at = None
    while step.time_left() > 1 and proc.poll() is None:
        metrics = next(iter(results.glob("*/metrics.jsonl")), None)
        if metrics is not None and (metrics.parent / "checkpoint.pt").exists():
            lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
            if lines:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_at = len(lines)
                break
        time.sleep(0.05)
    step.finish(record, killed=killed_at is not None)
    step.results["killed_after_epochs"] = killed_at
    log(f"    killed after {killed_at} epoch(s), {record['seconds']:.1f} s" if killed_at else
        f"    NOT killed: exit {record['returncode']} after {record['seconds']:.1f} s")
    if killed_at is None:
        step.problems.append(f"the first run ended (exit {record['returncode']}) or ran out of time before it "
                             "could be killed after a checkpoint")
        return
    if killed_at >= 3:
        step.problems.append("the trial had finished every epoch before the kill: nothing left to resume")
    step.run(cmd)
    trials = read_trials(results)
    step.results["trials"] = trials
    trial = trials[0] if trials else None
    if trial is None or trial["state"] != "done" or trial["epochs"] != 3:
        step.problems.append(f"after the rerun the trial is {trial and trial['state']} with "
                             f"{trial and trial['epochs']} epochs, expected done with 3")
    elif not (trial["resumed_from"] or 0) >= 1:
        step.problems.append(f"done.json says resumed_from {trial['resumed_from']}, expected >= 1")


def fashion_mnist_present() -> bool:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return any(all((folder / name).exists() or (folder / f"{name}.gz").exists() for name in names)
               for folder in (FASHION_DATA_ROOT / "FashionMNIST" / "raw", Path("/usr/share/datasets/fashion-mnist")))


def step_fashion(step: Step, args, sizes, work: Path) -> None:
    """Real Fashion-MNIST through `bench run`: standard and Co-teaching, one seed, each epoch timed."""
    if not fashion_mnist_present():
        step.problems.append(f"no real Fashion-MNIST in {FASHION_DATA_ROOT / 'FashionMNIST' / 'raw'} or "
                             f"/usr/share/datasets/fashion-mnist: {FASHION_HOW_TO}")
        return
    results = work / "runs-fashion"
    record = step.run([*BENCH, "run", "--dataset", "fashion-mnist", "--data-root", str(FASHION_DATA_ROOT),
                       "--methods", "standard,coteaching", "--seeds", "1", "--results", str(results),
                       "--device", args.device, *sizes["fashion_args"]])
    trials = read_trials(results)
    step.results["command_args"] = sizes["fashion_args"]
    step.results["trials"] = trials
    step.results["run_memory"] = record["memory"]
    full_epochs = 150 if "causalnl-paper" in sizes["fashion_args"] else 50
    for trial in trials:
        seconds = trial["epoch_seconds"][1:] or trial["epoch_seconds"]  # the first epoch pays the warm-up
        if seconds:
            trial["hours_for_full_recipe"] = round(sum(seconds) / len(seconds) * full_epochs / 3600, 3)
        if trial["state"] != "done":
            step.problems.append(f"fashion-mnist {trial['method']}: {trial['state']} after {trial['epochs']} epochs")
        elif (trial["test_acc_last_epoch"] or 0) < 0.5:
            step.problems.append(f"fashion-mnist {trial['method']}: test accuracy {trial['test_acc_last_epoch']:.3f} "
                                 "after its epochs, below 0.5: not learning")
    if {t["method"] for t in trials} != {"standard", "coteaching"}:
        step.problems.append(f"fashion-mnist: trials for {sorted(t['method'] for t in trials)}, expected standard "
                             "and coteaching")


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


# ----------------------------------------------------------------------------------- report
def fmt(value, spec: str = ",.2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def md_table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def measured_on(step: dict, report: dict) -> str:
    context = step["results"].get("context") or {}
    name = context.get("device_name") or report["environment"].get("device_name") or step["device"]
    return f"*Measured on {name}* (device `{context.get('device', step['device'])}`)."


def render_markdown(report: dict) -> str:
    env = report["environment"]
    steps = {s["name"]: s for s in report["steps"]}
    ok = sum(s["status"] == "ok" for s in report["steps"])
    lines = [f"# noisybench device check: {'PASSED' if report['passed'] else 'FAILED'}", "",
             (f"Device `{report['device']}`{' (--tiny sizes)' if report['tiny'] else ''}; {ok}/{len(steps)} steps "
             f"ok in {report['total_seconds']:.1f} s; started {report['started']}.  Every figure below was measured "
             f"in this run on the device its section names."), "",
             "## Environment", ""]
    keys = ["device_name", "gpu_memory_gib", "compute_capability", "bf16_supported", "nvidia_smi", "torch",
            "torchvision", "cuda_build", "cudnn", "cuda_available", "python", "platform", "cpu_count",
            "torch_threads", "omp_num_threads", "submitit", "noisybench_path"]
    lines += md_table(["", "value"], [[k, env[k]] for k in keys if k in env])
    lines.append("")
    lines += md_table(["step", "status", "seconds"],
                      [[s["title"], s["status"], fmt(s["seconds"], ".1f")] for s in report["steps"]])

    def section(name: str) -> dict | None:
        step = steps.get(name)
        if step is None:
            return None
        lines.extend(["", f"## {step['title']}", "", f"Status **{step['status']}** in {step['seconds']:.1f} s.  "
                      + (measured_on(step, report) if name != "pytest" else f"Device `{step['device']}`."), ""])
        return step

    step = section("pytest")
    if step and step["results"]:
        r = step["results"]
        lines += md_table(list(r["counts"]) or ["result"], [list(r["counts"].values()) or [r["last_line"]]])
        if r["skip_reasons"]:
            lines += ["", "Skipped:", ""] + [f"- `{s}`" for s in r["skip_reasons"]]
    step = section("speed")
    if step and step["results"].get("rows"):
        c = step["results"]["context"]
        lines += [(f"{c['model']}, batch {c['batch_size']}, protocol {c['protocol']}, {c['train_size']:,} synthetic "
                  f"training images, {c['steps']} timed steps after {c['warmup']} warm-up steps, evaluation timed on "
                  f"{c['eval_images_timed']:,} test images scaled to 10,000.  \"x reference\" = the papers' DataLoader "
                  f"loop's s/epoch / this loop's (above 1: faster); \"x standard\" = this loop's s/epoch / standard's."),
                  ""]
        lines += md_table(["loop", "s/epoch", "img/s", "x reference", "x standard", "host syncs/step",
                           "epoch hook s", "peak memory"],
                          [[r["loop"], fmt(r["s_per_epoch"]), fmt(r["img_per_s"], ",.1f"),
                            fmt(r["x_reference_speed"]), fmt(r["x_standard_time"]),
                            fmt(r["host_syncs_per_step"], ".1f"), fmt(r["epoch_hook_s"], ".3f"),
                            fmt(r["peak_memory_mib"], ",.0f")] for r in step["results"]["rows"]])
        lines += ["", (f"Peak memory: {step['results']['peak_memory_note']}: "
                       f"{memory_text(step['results']['memory'])}.")]
    step = section("pack")
    if step and step["results"].get("pack"):
        lines += md_table(["K", "aggregate img/s", "img/s per process", "x K=1", "CPU threads each", "wall s"],
                          [[p["processes"], fmt(p["aggregate_img_per_s"], ",.1f"), fmt(p["per_process_img_per_s"], ",.1f"),
                            fmt(p["gain_vs_one"]), p["threads_per_process"], fmt(p["wall_s"])]
                           for p in step["results"]["pack"]])
        lines += ["", f"Peak memory of the command: {memory_text(step['results']['memory'])}."]
    step = section("lend")
    if step and step["results"]:
        r = step["results"]
        lines += [f"`{r['header']}`; timed by {r['timing']}.", ""]
        lines += md_table(["", "median ms", "min ms"],
                          [["model step (fwd+bwd+SGD)", fmt(r["step_ms_median"]), fmt(r["step_ms_min"])],
                           ["dilute()", fmt(r["dilute_ms_median"]), fmt(r["dilute_ms_min"])],
                           ["dilute / step", f"{r['dilute_over_step_median_pct']:.2f}%",
                            f"{r['dilute_over_step_min_pct']:.2f}%"]])
    step = section("precision")
    if step and step["results"].get("rows"):
        rows = step["results"]["rows"]
        lines += md_table(["precision", "img/s", "ms/step", "s/epoch", "peak memory"],
                          [[p, fmt(r["img_per_s"], ",.1f"), fmt(r["step_ms"], ",.1f"), fmt(r["s_per_epoch"]),
                            memory_text(r["memory"])] for p, r in rows.items()])
        if "bf16_over_fp32_img_per_s" in step["results"]:
            lines += ["", f"bf16 / fp32 img/s = {step['results']['bf16_over_fp32_img_per_s']:.2f}"]
    step = section("fashion")
    if step and step["results"].get("trials"):
        lines += [f"Real Fashion-MNIST, `bench run --dataset fashion-mnist --methods standard,coteaching --seeds 1 "
                  f"{' '.join(step['results']['command_args'])}`:", ""]
        lines += md_table(["method", "state", "epochs", "s per epoch", "last test acc", "hours for the full recipe"],
                          [[t["method"], t["state"], fmt(t["epochs"], "d"),
                            ", ".join(fmt(s, ".1f") for s in t["epoch_seconds"]),
                            fmt(t["test_acc_last_epoch"], ".3f"), fmt(t.get("hours_for_full_recipe"), ".2f")]
                           for t in step["results"]["trials"]])
        lines.append("")
    for name in ("trainer", "resume"):
        step = section(name)
        if step and step["results"].get("trials"):
            r = step["results"]
            lines += [f"{r.get('data', '')}; `--noise sym:0.4 --seeds 1 --epochs 3`."
                      + (f"  Killed after {r['killed_after_epochs']} epoch(s), then rerun." if name == "resume" else ""),
                      ""]
            lines += md_table(["method", "state", "epochs (budget)", "trial s", "s per epoch", "last test acc",
                               "resumed from"],
                              [[t["method"], t["state"], f"{t['epochs']} ({fmt(t['epoch_budget'], 'd')})",
                                fmt(t["seconds"], ".1f"),
                                ", ".join(fmt(s, ".1f") for s in t["epoch_seconds"]),
                                fmt(t["test_acc_last_epoch"], ".3f"), fmt(t["resumed_from"], "d")]
                               for t in r["trials"]])
            if r.get("table"):
                lines += ["", "`bench table`:", "", r["table"]]
            if r.get("verify"):
                lines += ["", "`bench verify`: " + r["verify"].splitlines()[-1]]
    failures = [s for s in report["steps"] if s["status"] != "ok"]
    if failures:
        lines += ["", "## Failures", ""]
        for s in failures:
            lines += [f"### {s['title']}: {s['status']}", ""] + [f"- {p}" for p in s["problems"]]
            for c in s["commands"]:
                if c.get("tail"):
                    lines += ["", f"`{c['command']}` (exit {c['returncode']}, {fmt(c['seconds'], '.1f')} s):", "",
                              "```", c["tail"], "```"]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def memory_text(memory: dict | None) -> str:
    if not memory:
        return "-"
    parts = []
    if memory.get("peak_process_rss_mib"):
        parts.append(f"host RSS {memory['peak_process_rss_mib']:,.0f} MiB (largest process)")
    if memory.get("peak_group_rss_mib") and round(memory["peak_group_rss_mib"]) != round(memory.get("peak_process_rss_mib") or 0):
        parts.append(f"{memory['peak_group_rss_mib']:,.0f} MiB (all its processes)")
    if memory.get("gpu_used_mib_peak") is not None:
        parts.append(f"GPU in use {memory['gpu_used_mib_peak']:,.0f} MiB at peak "
                     f"(nvidia-smi, {fmt(memory.get('gpu_used_mib_before'), ',.0f')} MiB before)")
    return ", ".join(parts) or "-"


# ------------------------------------------------------------------------------------- main
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
