"""What the device check measures without training a trial: the environment, the GPU tests,
`bench speed` (every method, packing, bf16 against fp32) and LEND's dilution against a training
step.  Each function fills one step's results and problems from the commands it runs."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

from device_config import BENCH, METHODS, PYTHON
from device_runner import Step

# Run in a subprocess of the interpreter under test: what it imports is what the steps use.
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
