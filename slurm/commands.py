"""The launchers' command line: `bench run --launcher ...` and its options, and `bench status`.

bench/cli.py calls :func:`add_launcher_arguments` for `bench run` and :func:`launcher_options`
before anything else in cmd_run (so a bad option writes nothing), and registers `bench status`
through COMMAND_MODULES.  The machinery lives in slurm/launcher.py, imported only when used:
it imports submitit, which `bench list` or `bench table` do not need.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

from noisybench.core.errors import BenchError
from noisybench.slurm.options import DEFAULT_MAX_REQUEUES, LAUNCHERS, LauncherOptions

# Options that mean something to one launcher only: given to another they would be ignored
# silently, so they are refused (value None in argparse = not given).
SLURM_ONLY = {"partition": "--partition", "gpus_per_task": "--gpus-per-task", "cpus_per_task": "--cpus-per-task",
              "mem": "--mem", "array_parallelism": "--array-parallelism", "trials_per_job": "--trials-per-job",
              "slurm": "--slurm"}
LOCAL_ONLY = {"workers": "--workers"}
SUBMITIT_ONLY = {"time": "--time", "max_requeues": "--max-requeues", "slurm_folder": "--slurm-folder",
                 "wait": "--wait/--no-wait"}

# sbatch options that have their own flag here, or that submitit must own to find logs and requeue.
SBATCH_WITH_OWN_FLAG = {"partition": "--partition", "p": "--partition", "time": "--time", "t": "--time",
                        "gpus-per-task": "--gpus-per-task", "cpus-per-task": "--cpus-per-task", "c": "--cpus-per-task",
                        "mem": "--mem"}
SBATCH_OWNED_BY_SUBMITIT = {"array", "a", "output", "o", "error", "e", "signal", "open-mode", "job-name", "j",
                            "wrap"}

MEM_PATTERN = re.compile(r"(\d+(?:\.\d+)?)([KMGT])?B?", re.IGNORECASE)


def add_launcher_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("launchers", "inline (default) runs the trials here, one after another; local and "
                             "slurm run them through submitit and follow them (bench status shows where they are)")
    g.add_argument("--launcher", choices=LAUNCHERS, default="inline",
                   help="inline: in this process; local: --workers parallel processes; slurm: one job array")
    g.add_argument("--trials-per-gpu", type=int, default=1, metavar="K",
                   help="inline: run K trials at once on each GPU, one process each, when one trial cannot fill it "
                        "(on the CPU: K processes sharing its cores); `bench speed --pack 1,2,4,8` measures the gain")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local: N parallel processes (default: one per GPU, else 2); each keeps torch's CPU "
                        "threads, as inline does (same numbers); OMP_NUM_THREADS=M splits the cores instead")
    g.add_argument("--partition", default=None, help="slurm: partition (default: the cluster's default)")
    g.add_argument("--time", type=int, default=None, metavar="MINUTES",
                   help="slurm: time limit of each array task (default 60; a timed-out task is requeued and "
                        "resumes); local: of each worker (default none)")
    g.add_argument("--gpus-per-task", type=int, default=None, metavar="N", help="slurm: GPUs per array task")
    g.add_argument("--cpus-per-task", type=int, default=None, metavar="N",
                   help="slurm: CPUs per array task; torch then uses that many threads (default: the "
                        "cluster's CPUs per task and torch's own thread count)")
    g.add_argument("--mem", default=None, metavar="SIZE", help="slurm: memory per array task, e.g. 16G or 4000M")
    g.add_argument("--array-parallelism", type=int, default=None, metavar="N",
                   help="slurm: at most N array tasks at once (default 256, submitit's)")
    g.add_argument("--trials-per-job", type=int, default=None, metavar="K",
                   help="slurm: K trials run one after another in each array task, so that many short trials "
                        "do not flood the queue (default 1)")
    g.add_argument("--slurm", action="append", default=None, metavar="KEY=VALUE",
                   help="slurm: another sbatch option, e.g. --slurm qos=high --slurm account=lab; "
                        "--slurm setup='module load cuda' adds a line the job runs first (repeatable)")
    g.add_argument("--slurm-folder", default=None, metavar="DIR",
                   help="local/slurm: submitit's pickles and logs (default <results>/.submitit)")
    g.add_argument("--max-requeues", type=int, default=None, metavar="N",
                   help="local/slurm: requeue a task that hits --time at most N times (default 3; "
                        "submitit requeues preempted tasks without counting); it resumes its trial from the "
                        "last epoch checkpoint")
    g.add_argument("--wait", dest="wait", action="store_true", default=None,
                   help="local/slurm: follow the jobs with a progress line and print the table (default)")
    g.add_argument("--no-wait", dest="wait", action="store_false",
                   help="local/slurm: return after submission; follow with bench status / bench table")


def _at_least(value, minimum: int, flag: str, example: str):
    if value is not None and value < minimum:
        raise BenchError(f"{flag} {value}: must be at least {minimum}, e.g. {flag} {example}")
    return value


def parse_mem(text: str) -> str:
    """--mem 16G / 16GB / 1.5G / 4000M / 4000 (MB, sbatch's unit) -> sbatch's form (16G, 1536M, 4000M, 4000)."""
    match = MEM_PATTERN.fullmatch(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise BenchError(f"--mem {text}: expected a size such as 16G, 4000M or 4000 (megabytes)")
    number, unit = match.group(1), (match.group(2) or "").upper()
    if "." in number:  # sbatch takes whole numbers: one unit down
        if unit in ("", "K"):
            raise BenchError(f"--mem {text}: sbatch takes whole numbers, e.g. --mem {int(float(number)) + 1}{unit or 'M'}")
        number, unit = str(int(float(number) * 1024)), "KMGT"["KMGT".index(unit) - 1]
    return f"{number}{unit}"


def parse_sbatch_options(items: list[str] | None) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """--slurm KEY=VALUE items -> (sbatch options, setup lines)."""
    options: dict[str, str] = {}
    setup: list[str] = []
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise BenchError(f"--slurm {item}: expected KEY=VALUE, e.g. --slurm qos=high or --slurm setup='module load cuda'")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
            raise BenchError(f"--slurm {item}: {key!r} is not an sbatch option name; use e.g. --slurm qos=high")
        if key == "setup":
            if not value.strip():
                raise BenchError(f"--slurm {item}: empty setup line; give the shell command, e.g. --slurm setup='module load cuda'")
            setup.append(value)
            continue
        name = key.replace("_", "-")
        if name in SBATCH_WITH_OWN_FLAG:
            raise BenchError(f"--slurm {item}: use {SBATCH_WITH_OWN_FLAG[name]} instead")
        if name in SBATCH_OWNED_BY_SUBMITIT:
            raise BenchError(f"--slurm {item}: submitit sets --{name} itself (to find logs and requeue); leave it out")
        if not value:
            raise BenchError(f"--slurm {item}: no value; give one, e.g. --slurm {name}=...")
        options[name] = value
    return tuple(options.items()), tuple(setup)


def launcher_options(args):
    """Check the launcher options of `bench run` (before anything is written) -> LauncherOptions."""
    launcher = args.launcher
    trials_per_gpu = getattr(args, "trials_per_gpu", 1)
    if trials_per_gpu < 1:
        raise BenchError(f"--trials-per-gpu {trials_per_gpu}: must be at least 1")
    if trials_per_gpu > 1 and launcher != "inline":
        raise BenchError(f"--trials-per-gpu packs trials onto this machine's GPUs and works with --launcher inline; "
                         f"drop it for --launcher {launcher}")
    given = {name for name in (*SLURM_ONLY, *LOCAL_ONLY, *SUBMITIT_ONLY) if getattr(args, name, None) is not None}
    for name in sorted(given):
        flag = {**SLURM_ONLY, **LOCAL_ONLY, **SUBMITIT_ONLY}[name]
        if launcher == "inline":
            raise BenchError(f"{flag} needs --launcher local or slurm (inline runs the trials in this process)")
        if name in SLURM_ONLY and launcher != "slurm":
            raise BenchError(f"{flag} applies to --launcher slurm only; --launcher {launcher} "
                             + ("spreads the trials over --workers processes" if launcher == "local" else "ignores it"))
        if name in LOCAL_ONLY and launcher != "local":
            raise BenchError(f"{flag} applies to --launcher local only; with slurm use --array-parallelism "
                             "and --trials-per-job")

    if launcher == "inline":
        return LauncherOptions(trials_per_gpu=trials_per_gpu)
    _at_least(args.workers, 1, "--workers", "4")
    _at_least(args.time, 1, "--time", "120")
    _at_least(args.max_requeues, 0, "--max-requeues", "3")
    _at_least(args.gpus_per_task, 0, "--gpus-per-task", "1")
    _at_least(args.cpus_per_task, 1, "--cpus-per-task", "4")
    _at_least(args.array_parallelism, 1, "--array-parallelism", "8")
    _at_least(args.trials_per_job, 1, "--trials-per-job", "4")
    sbatch_options, setup = parse_sbatch_options(args.slurm)
    mem = parse_mem(args.mem) if args.mem is not None else None
    if args.slurm_folder is not None and Path(args.slurm_folder).exists() and not Path(args.slurm_folder).is_dir():
        raise BenchError(f"--slurm-folder {args.slurm_folder}: exists and is not a directory; give a directory")
    if launcher == "slurm":
        check_slurm_reachable(args.partition)
    return LauncherOptions(
        launcher=launcher, wait=True if args.wait is None else args.wait, workers=args.workers,
        time_min=args.time, max_requeues=DEFAULT_MAX_REQUEUES if args.max_requeues is None else args.max_requeues,
        folder=args.slurm_folder, partition=args.partition, gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task, mem=mem, array_parallelism=args.array_parallelism,
        trials_per_job=args.trials_per_job or 1, sbatch_options=sbatch_options, setup_lines=setup,
    )


def check_slurm_reachable(partition: str | None) -> None:
    """sbatch is here, slurmctld answers and the partition exists: else stop before writing anything."""
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise BenchError("--launcher slurm: sbatch/srun not found on PATH; run on a SLURM login node "
                         "(or start the one-node test cluster: sudo slurm/start_cluster.sh)")
    command = ["sinfo", "-h", "-o", "%P"] + (["-p", partition] if partition else [])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"--launcher slurm: sinfo did not answer ({exc}); is slurmctld up?") from None
    if result.returncode != 0:
        raise BenchError(f"--launcher slurm: the cluster does not answer: "
                         f"{' '.join((result.stderr or result.stdout).split())[:200]}; is slurmctld up?")
    if partition and not result.stdout.strip():
        known = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30).stdout.split()
        raise BenchError(f"--partition {partition}: no such partition; choose one of: "
                         f"{', '.join(p.rstrip('*') for p in known) or '(sinfo lists none)'}")


# --------------------------------------------------------------------------------------
# bench status
# --------------------------------------------------------------------------------------
def _last_error_line(failed_file: Path) -> str:
    import json

    try:
        failure = json.loads(failed_file.read_text())
    except (OSError, ValueError):
        return "(failed.json unreadable)"
    lines = [line for line in str(failure.get("traceback") or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else str(failure.get("error") or "(no error recorded)")


def _epochs_line(trial_dir: Path, checkpointed: bool = False) -> str:
    """'epoch 3/20': epochs in metrics.jsonl (a running trial) or in its newest checkpoint (what a
    resume starts from), over the resolved recipe's epochs in spec.json."""
    import json

    from noisybench.results.store import TrialDir

    trial = TrialDir(trial_dir)
    done = (trial.checkpointed_epoch() or 0) if checkpointed else len(trial.read_metrics())
    try:
        total = json.loads(trial.spec_file.read_text())["recipe"]["epochs"]
    except (OSError, ValueError, KeyError, TypeError):
        total = "?"
    return f"epoch {done}/{total}"


def _job_words(trial) -> str:
    if not trial.job_id:
        if trial.job_state:  # e.g. "held by pid 123 on host": an inline run, or another process
            return trial.job_state
        return "no job recorded (an inline run?)"
    kind = "SLURM job" if trial.launcher == "slurm" else "local job (pid)"
    return f"{kind} {trial.job_id}" + (f" {trial.job_state}" if trial.job_state else "")


def _log_words(trial) -> str:
    if not trial.stdout:
        return ""
    return f"\n      log: {trial.stdout}" + (f"\n           {trial.stderr}" if trial.stderr else "")


def format_status(report) -> str:
    from noisybench.results.store import DONE, FAILED, INCOMPLETE
    from noisybench.slurm.status import DAMAGED, NOT_STARTED, RUNNING, format_counts

    counts = report.counts()
    lines = [f"{report.root}: {len(report.trials)} trials: {format_counts(counts)}"]
    for error in report.errors:
        lines.append(f"  warning: {error}; running/pending trials may show as incomplete")
    for trial in report.in_state(RUNNING):
        lines.append(f"  running     {trial.label}: {_epochs_line(report.root / trial.dirname)}, {_job_words(trial)}"
                     + _log_words(trial))
    pending_jobs = sorted({t.job_id for t in report.trials.values() if t.state == "pending" and t.job_id})
    if pending_jobs:
        n = counts["pending"]
        lines.append(f"  pending     {n} trial{'s' * (n != 1)} in job {', '.join(pending_jobs)}")
    for trial in report.in_state(FAILED):
        path = report.root / trial.dirname / "failed.json"
        lines.append(f"  failed      {trial.label}: {_last_error_line(path)}\n      traceback: {path}"
                     + (f"\n      {_job_words(trial)}" if trial.job_id else "") + _log_words(trial))
    for trial in report.in_state(INCOMPLETE):
        lines.append(f"  incomplete  {trial.label}: {_epochs_line(report.root / trial.dirname, True)} checkpointed, "
                     f"{_job_words(trial)}" + _log_words(trial))
    for trial in report.in_state(DAMAGED):
        lines.append(f"  damaged     {trial.label}: {trial.job_state}; not counted in any table "
                     f"(bench verify --results {report.root} --repair moves it aside to be redone)")
    for trial in report.in_state(NOT_STARTED):
        lines.append(f"  not started {trial.label}: {_job_words(trial)}" + _log_words(trial))
    if counts[FAILED] + counts[INCOMPLETE] + counts[NOT_STARTED]:
        lines.append("rerun the same `bench run` command to redo the unfinished trials "
                     "(incomplete ones resume from their last checkpoint)")
    if counts[DONE]:
        lines.append(f"table of the finished trials: bench table --results {report.root}")
    return "\n".join(lines)


def cmd_status(args) -> int:
    from noisybench.results.paths import check_results_path

    results = check_results_path(args.results, must_exist=True)
    from noisybench.slurm.status import add_final_job_states, collect_status

    report = collect_status(results)
    if not report.trials:
        raise BenchError(f"no trials under {args.results}; start some with `bench run --results {args.results}`")
    add_final_job_states(report)
    print(format_status(report))
    return 0


def register_commands(subparsers) -> None:
    p = subparsers.add_parser("status", help="trials of a results directory per state, with the errors and logs "
                                             "of the failed ones (follows local and SLURM jobs)")
    p.add_argument("--results", default="runs", help="results directory (default: ./runs)")
    p.set_defaults(handler=cmd_status)
