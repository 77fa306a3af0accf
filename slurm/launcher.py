"""Run a sweep's trials through submitit: ``bench run --launcher local|slurm``.

Every launcher runs the same function (:func:`bench.train.run_trial`, here wrapped in
:class:`TrialBatch`) on the same TrialSpecs, and the trial store is the only channel back: the
submitting process never reads a job's return value, it reads the trial directories.

``slurm`` submits ONE job array (``--trials-per-job K`` trials per array task); ``local`` starts
``--workers N`` processes through submitit's LocalExecutor.  A task that is timed out or preempted
is requeued by submitit (TrialBatch is Checkpointable) and picks up where the store says: done
trials are skipped, an incomplete one resumes from its last epoch checkpoint.

What is recorded under ``<results>/.submitit`` (whatever ``--slurm-folder`` says, so that
``bench status --results DIR`` needs nothing else):

    submissions/<time>_<launcher>_<job>.json  one per submission: each job / array task, the
                                               trials it runs (in order) and its log files
    tasks/<submission>_<job id>.json          written by the running task: the trial it is on
                                               and the outcome of those it has finished
    %j/                                        submitit's pickles and logs (default --slurm-folder)
"""
from __future__ import annotations

import getpass
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import submitit

from bench.errors import BenchError
from bench.spec import TrialSpec
from results.store import DONE, FAILED, INCOMPLETE, TrialDir, TrialStore, atomic_write_json

LAUNCHERS = ("inline", "local", "slurm")

RUNNING, PENDING, NOT_STARTED = "running", "pending", "not started"
# The order `bench status` and the progress line show the states in.
STATES = (DONE, RUNNING, PENDING, FAILED, INCOMPLETE, NOT_STARTED)

DEFAULT_SLURM_TIME_MIN = 60
# A local process has no scheduler limit to respect: only --time stops it.
LOCAL_NO_LIMIT_MIN = 30 * 24 * 60
DEFAULT_MAX_REQUEUES = 3
DEFAULT_LOCAL_WORKERS_ON_CPU = 2

RECORD_DIR = ".submitit"

# squeue's states of a job that holds (or is about to hold) a CPU: its trial is running.
SLURM_RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING"}


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchOptions:
    """Validated `bench run` launcher options (slurm/commands.py builds them from argv)."""

    launcher: str = "inline"
    wait: bool = True
    workers: int | None = None  # local; None: one per GPU, else DEFAULT_LOCAL_WORKERS_ON_CPU
    time_min: int | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES
    folder: str | None = None  # submitit's pickles and logs; None: <results>/.submitit
    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    array_parallelism: int | None = None
    trials_per_job: int = 1
    sbatch_options: tuple[tuple[str, str], ...] = ()  # --slurm KEY=VALUE, KEY without "setup"
    setup_lines: tuple[str, ...] = ()  # --slurm setup=LINE

    def slurm_parameters(self) -> dict:
        """SlurmExecutor.update_parameters() arguments."""
        params = {
            "job_name": "noisybench",
            "time": self.time_min or DEFAULT_SLURM_TIME_MIN,
            "partition": self.partition,
            "gpus_per_task": self.gpus_per_task,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "array_parallelism": self.array_parallelism,
            "additional_parameters": dict(self.sbatch_options) or None,
            "setup": list(self.setup_lines) or None,
        }
        return {k: v for k, v in params.items() if v is not None}


# --------------------------------------------------------------------------------------
# What runs in the job
# --------------------------------------------------------------------------------------
def _requested_threads() -> int | None:
    """--cpus-per-task N (SLURM_CPUS_PER_TASK), where no OMP_NUM_THREADS says otherwise.

    Otherwise torch's default is kept, as inline keeps it: on the CPU, sums split over another
    number of threads round differently, and a trial should give the numbers an inline run gives.
    (torch's default already follows the CPU set of a cluster that binds tasks to their CPUs.)
    """
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if "OMP_NUM_THREADS" not in os.environ and value.isdigit() and int(value) > 0:
        return int(value)
    return None


class TrialBatch(submitit.helpers.Checkpointable):
    """Runs a list of trials one after another in one job (one array task).

    A trial that raises is recorded as failed by run_trial and the batch goes on with the next.
    On a timeout or preemption submitit calls :meth:`checkpoint` and requeues the same batch;
    the requeued task skips the trials already done and resumes the interrupted one from its
    last epoch checkpoint, so nothing beyond the store has to be saved.
    """

    def __init__(self, results_root: str, submission: str, trial_kwargs: dict):
        self.results_root = results_root
        self.submission = submission
        self.trial_kwargs = dict(trial_kwargs)

    def __call__(self, spec_records: list[dict]) -> list[dict]:
        import torch

        from bench.sweep import format_progress
        from bench.train import run_trial

        threads = _requested_threads()
        if threads:
            # On a cluster that does not bind tasks to their CPUs, torch would use every core.
            torch.set_num_threads(threads)
        job_id = submitit.JobEnvironment().job_id
        progress = TaskProgress(Path(self.results_root), self.submission, job_id)
        specs = [TrialSpec.from_json(record) for record in spec_records]
        outcomes = []
        for i, spec in enumerate(specs, 1):
            progress.start(spec.dirname)
            print(f"noisybench: trial {spec.label()} -> {Path(self.results_root) / spec.dirname}", flush=True)
            summary = run_trial(spec, self.results_root, **self.trial_kwargs)
            state = FAILED if summary.get("state") == FAILED else DONE
            progress.finish(spec.dirname, state)
            if state == FAILED:
                print(f"noisybench: trial {spec.label()} failed: {summary['error']} "
                      f"(traceback in {Path(self.results_root) / spec.dirname / 'failed.json'})",
                      file=sys.stderr, flush=True)
            print(format_progress(i, len(specs), spec, summary), flush=True)
            outcomes.append({"trial": spec.dirname, "state": state})
        progress.start(None)
        return outcomes

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue this batch with the same trials: the store says what is left to do."""
        print("noisybench: timed out or preempted; requeued, the interrupted trial resumes "
              "from its last epoch checkpoint", flush=True)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class TaskProgress:
    """tasks/<submission>_<job id>.json: which trial a running task is on (for `bench status`)."""

    def __init__(self, root: Path, submission: str, job_id: str):
        self.path = task_progress_file(root, submission, job_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state = {"submission": submission, "job_id": job_id, "current": None, "finished": {}}
        if self.path.exists():  # a requeued task keeps what its first run finished
            try:
                self.state["finished"] = dict(json.loads(self.path.read_text()).get("finished") or {})
            except (OSError, json.JSONDecodeError):
                pass

    def start(self, dirname: str | None) -> None:
        self.state["current"] = dirname
        self.state["updated_at"] = time.time()
        atomic_write_json(self.path, self.state)

    def finish(self, dirname: str, state: str) -> None:
        self.state["finished"][dirname] = state
        self.start(None)


def task_progress_file(root: Path, submission: str, job_id: str) -> Path:
    return Path(root) / RECORD_DIR / "tasks" / f"{submission}_{job_id}.json"


# --------------------------------------------------------------------------------------
# Submission
# --------------------------------------------------------------------------------------
def chunk_trials(specs: list[TrialSpec], options: LaunchOptions, workers: int) -> list[list[TrialSpec]]:
    """slurm: consecutive groups of --trials-per-job (same method and noise, other seeds: similar
    lengths); local: one round-robin share per worker process."""
    if options.launcher == "slurm":
        k = options.trials_per_job
        return [specs[i:i + k] for i in range(0, len(specs), k)]
    n = min(workers, len(specs))
    return [specs[i::n] for i in range(n)]


def local_gpu_ids(device: str | None) -> list[int]:
    """GPUs to pin local workers to (one each, round robin); none on a CPU run or when a
    specific cuda:N was asked for (the worker then sees every GPU)."""
    if device not in (None, "auto", "cuda"):
        return []
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def submit(specs: list[TrialSpec], results_root: Path, options: LaunchOptions, trial_kwargs: dict) -> dict:
    """Submit the trials, write the submission record and return it."""
    root = Path(results_root).resolve()
    submission = uuid.uuid4().hex[:12]
    folder = Path(options.folder).expanduser().resolve() if options.folder else root / RECORD_DIR
    gpu_ids = local_gpu_ids(trial_kwargs.get("device")) if options.launcher == "local" else []
    workers = options.workers or len(gpu_ids) or DEFAULT_LOCAL_WORKERS_ON_CPU
    chunks = chunk_trials(specs, options, workers)
    batch = TrialBatch(str(root), submission, trial_kwargs)
    arguments = [[spec.to_json() for spec in chunk] for chunk in chunks]
    try:
        if options.launcher == "slurm":
            executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=options.max_requeues)
            executor.update_parameters(**options.slurm_parameters())
            jobs = executor.map_array(batch, arguments)
        else:
            # No %j here: submitit's local controller would create a directory literally named "%j".
            executor = submitit.LocalExecutor(folder=folder, max_num_timeout=options.max_requeues)
            executor.update_parameters(timeout_min=options.time_min or LOCAL_NO_LIMIT_MIN)
            jobs = []
            for i, argument in enumerate(arguments):
                if gpu_ids:
                    executor.update_parameters(gpus_per_node=1, visible_gpus=(gpu_ids[i % len(gpu_ids)],))
                jobs.append(executor.submit(batch, argument))
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError,
            subprocess.CalledProcessError, OSError) as exc:
        message = " ".join(str(exc).split())[:400]
        raise BenchError(f"--launcher {options.launcher}: submission failed: {message}; check --partition, "
                         "--time, --mem and --slurm values against the cluster (sinfo, scontrol show partition)") from None
    submitted_at = time.time()
    head = jobs[0].job_id.split("_")[0]
    record = {
        "submission": submission,
        "launcher": options.launcher,
        "job": head,
        "submitted_at": submitted_at,
        "host": socket.gethostname(),
        "log_folder": str(folder),
        "parameters": options.slurm_parameters() if options.launcher == "slurm" else
        {"workers": len(chunks), "gpus": gpu_ids},
        "tasks": [
            {"job_id": job.job_id, "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
             "trials": [{"dir": s.dirname, "label": s.label()} for s in chunk]}
            for job, chunk in zip(jobs, chunks)
        ],
    }
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(submitted_at))
    path = root / RECORD_DIR / "submissions" / f"{stamp}_{options.launcher}_{head}_{submission}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    return record


def load_submissions(results_root) -> list[dict]:
    """Every submission record under <results>/.submitit, oldest first."""
    folder = Path(results_root) / RECORD_DIR / "submissions"
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a record cut by a crash names no job we could follow
    return sorted(records, key=lambda r: r.get("submitted_at", 0.0))


# --------------------------------------------------------------------------------------
# Job states
# --------------------------------------------------------------------------------------
class JobQueryError(RuntimeError):
    """The scheduler did not answer: job states are unknown (not: the jobs are gone)."""


def _expand_job_ids(text: str) -> list[str]:
    """squeue / sacct ids ("12", "12_3", "12_[4-6%2]") as submitit's job ids."""
    from submitit.slurm.slurm import read_job_id

    ids = []
    for parts in read_job_id(text):
        if len(parts) >= 3:
            ids += [f"{parts[0]}_{i}" for i in range(int(parts[1]), int(parts[2]) + 1)]
        else:
            ids.append("_".join(parts[:2]))
    return ids


def slurm_live_states() -> dict[str, str]:
    """State of every live (queued, running or completing) job of this user, by submitit job id."""
    try:
        result = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JobQueryError(f"squeue: {exc}") from None
    if result.returncode != 0:
        raise JobQueryError(f"squeue: {(result.stderr or result.stdout).strip()[:200]}")
    states = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            for job_id in _expand_job_ids(job):
                states[job_id] = state.strip()
    return states


def slurm_final_states(job_ids: Iterable[str]) -> dict[str, str]:
    """sacct's state of finished jobs (COMPLETED, CANCELLED by 0, TIMEOUT, ...); {} without accounting."""
    heads = sorted({j.split("_")[0] for j in job_ids})
    if not heads or shutil.which("sacct") is None:
        return {}
    try:
        result = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(heads)],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        job, _, state = line.strip().partition("|")
        if job:
            for job_id in _expand_job_ids(job):
                states[job_id] = state.strip()  # later lines (after a requeue) win
    return states


def local_job_alive(pid_text: str) -> bool:
    """A local submitit job (its controller's pid) is alive: not gone, not a zombie, still submitit."""
    try:
        stat = Path(f"/proc/{int(pid_text)}/stat").read_text()
        cmdline = Path(f"/proc/{int(pid_text)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z" and b"submitit" in cmdline


# --------------------------------------------------------------------------------------
# Trial states
# --------------------------------------------------------------------------------------
@dataclass
class TrialStatus:
    dirname: str
    label: str
    state: str
    job_id: str | None = None
    job_state: str | None = None  # the scheduler's word, where it has one
    launcher: str | None = None
    stdout: str | None = None
    stderr: str | None = None


@dataclass
class StatusReport:
    root: Path
    trials: dict[str, TrialStatus]
    submissions: list[dict]
    errors: list[str] = field(default_factory=list)  # scheduler queries that failed

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for trial in self.trials.values():
            counts[trial.state] += 1
        return counts

    def in_state(self, state: str) -> list[TrialStatus]:
        return [t for t in self.trials.values() if t.state == state]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _label_from_store(trial: TrialDir) -> str:
    record = _read_json(trial.spec_file) or {}
    try:
        return TrialSpec.from_json(record["spec"]).label()
    except (KeyError, TypeError):
        return trial.path.name


def collect_status(results_root, specs: list[TrialSpec] | None = None) -> StatusReport:
    """The state of each trial: those of ``specs``, else every trial in the store or in a submission.

    running / pending come from the job that last took the trial (squeue for SLURM, the process
    for local jobs); without a live job a trial is done, failed, incomplete (started, not finished)
    or not started.
    """
    root = Path(results_root)
    submissions = load_submissions(root)
    latest: dict[str, tuple[dict, dict, str]] = {}  # dirname -> (submission, task, label)
    for record in submissions:
        for task in record.get("tasks", []):
            for trial in task.get("trials", []):
                latest[trial["dir"]] = (record, task, trial.get("label", trial["dir"]))

    if specs is not None:
        names = {s.dirname: s.label() for s in specs}
    else:
        names = {}
        if root.is_dir():
            for path in sorted(root.iterdir()):
                if path.is_dir() and path.name != RECORD_DIR and (path / "spec.json").exists():
                    names[path.name] = None
        for name, (_, _, label) in latest.items():
            names.setdefault(name, label)

    # Ask the schedulers only about the jobs of trials that are not done yet.
    wanted = {latest[n][1]["job_id"]: latest[n][0] for n in names
              if n in latest and not (root / n / "done.json").exists()}
    live: dict[str, str | None] = {}
    errors: list[str] = []
    if any(r.get("launcher") == "slurm" for r in wanted.values()):
        try:
            squeue = slurm_live_states()
            live.update({j: squeue.get(j) for j, r in wanted.items() if r.get("launcher") == "slurm"})
        except JobQueryError as exc:
            errors.append(str(exc))
    here = socket.gethostname()
    for job_id, record in wanted.items():
        if record.get("launcher") == "local":
            if record.get("host") == here:
                live[job_id] = "RUNNING" if local_job_alive(job_id) else None
            else:
                errors.append(f"local job {job_id} ran on {record.get('host')}; ask there")

    trials: dict[str, TrialStatus] = {}
    for name, label in names.items():
        trial = TrialDir(root / name)
        status = TrialStatus(name, label or _label_from_store(trial), DONE)
        record, task, _ = latest.get(name, (None, None, None))
        if task is not None:
            status.job_id, status.launcher = task["job_id"], record.get("launcher")
            status.stdout, status.stderr = task.get("stdout"), task.get("stderr")
        trials[name] = status
        if trial.done_file.exists():
            continue
        job_state = live.get(status.job_id) if task is not None else None
        status.job_state = job_state
        if job_state is not None:
            if job_state.split()[0] in SLURM_RUNNING_STATES:
                # A running task works through its trials in order: which one is it on?
                progress = _read_json(task_progress_file(root, record["submission"], status.job_id)) or {}
                finished = progress.get("finished") or {}
                if finished.get(name) == FAILED and trial.failed_file.exists():
                    status.state = FAILED
                elif progress.get("current") == name:
                    status.state = RUNNING
                else:
                    status.state = PENDING
            else:
                status.state = PENDING
        elif trial.failed_file.exists():
            status.state = FAILED
        elif trial.path.exists():
            status.state = INCOMPLETE
        else:
            status.state = NOT_STARTED
    return StatusReport(root, trials, submissions, errors)


def add_final_job_states(report: StatusReport) -> None:
    """Fill in sacct's word (CANCELLED, TIMEOUT, FAILED, ...) for the jobs of unfinished trials."""
    ended = [t for t in report.trials.values()
             if t.state in (FAILED, INCOMPLETE, NOT_STARTED) and t.job_id and t.job_state is None]
    slurm_ids = [t.job_id for t in ended if t.launcher == "slurm"]
    final = slurm_final_states(slurm_ids) if slurm_ids else {}
    for t in ended:
        t.job_state = final.get(t.job_id) or ("ended" if t.launcher == "local" else None)


# --------------------------------------------------------------------------------------
# bench run --launcher local|slurm
# --------------------------------------------------------------------------------------
def format_counts(counts: dict[str, int]) -> str:
    shown = [s for s in STATES if s != NOT_STARTED or counts.get(s)]
    return " | ".join(f"{s} {counts.get(s, 0)}" for s in shown)


def describe_submission(record: dict) -> str:
    tasks = record["tasks"]
    trials = sum(len(t["trials"]) for t in tasks)
    if record["launcher"] == "slurm":
        kind = f"SLURM job array {record['job']}" if "_" in tasks[0]["job_id"] else f"SLURM job {record['job']}"
        return f"{kind}: {trials} trial{'s' * (trials != 1)} in {len(tasks)} task{'s' * (len(tasks) != 1)}"
    pids = ",".join(t["job_id"] for t in tasks)
    return (f"{len(tasks)} local worker process{'es' * (len(tasks) != 1)} (pid {pids}): "
            f"{trials} trial{'s' * (trials != 1)}")


def launch_trials(specs: list[TrialSpec], results_root, options: LaunchOptions, trial_kwargs: dict,
                  echo: Callable[[str], None] = print, poll_s: float | None = None) -> dict[str, int] | None:
    """Submit the trials of ``specs`` that are not done (nor queued already) and, with
    ``options.wait``, follow them to the end.  Returns the final counts, None without waiting.

    ``trial_kwargs`` are run_trial's keyword arguments (device, data_root, ...), as inline uses them.
    """
    trial_kwargs = dict(trial_kwargs)
    if options.launcher == "local":
        from bench.train import resolve_device

        resolve_device(trial_kwargs.get("device"))  # this machine: a bad --device stops here, not in each worker
    if trial_kwargs.get("data_root") is not None:  # jobs may start elsewhere than this directory
        trial_kwargs["data_root"] = str(Path(trial_kwargs["data_root"]).expanduser().resolve())
    root = Path(results_root)
    from bench.sweep import check_stored_recipes

    check_stored_recipes(specs, TrialStore(root))
    before = collect_status(root, specs)
    if before.errors and options.launcher == "slurm":
        raise BenchError(f"--launcher slurm: cannot see the queue ({before.errors[0]}); is slurmctld up? "
                         "(sinfo should answer; for a test cluster: slurm/start_cluster.sh)")
    done = before.in_state(DONE)
    queued = before.in_state(RUNNING) + before.in_state(PENDING)
    queued_names = {t.dirname for t in queued}
    todo = [s for s in specs if before.trials[s.dirname].state not in (DONE, RUNNING, PENDING)]
    if done:
        echo(f"{len(done)} of {len(specs)} trials already done in {results_root}: skipped")
    if queued:
        jobs = ", ".join(sorted({t.job_id for t in queued}))
        echo(f"{len(queued)} trials already queued or running (job {jobs}): not submitted again")
    submitted = None
    if todo:
        submitted = submit(todo, root, options, trial_kwargs)
        echo(f"submitted {describe_submission(submitted)}; logs in {submitted['log_folder']}")
    if not options.wait:
        if submitted or queued:
            cancel = (f"scancel {submitted['job']}" if submitted and options.launcher == "slurm" else
                      f"kill {' '.join(t['job_id'] for t in submitted['tasks'])}" if submitted else "")
            echo(f"follow it with: bench status --results {results_root}; when it is done: "
                 f"bench table --results {results_root}" + (f"; cancel with: {cancel}" if cancel else ""))
        return None
    followed = {s.dirname for s in todo} | queued_names
    if not followed:  # all done already: nothing to follow
        return before.counts()
    return follow(specs, root, followed, echo=echo, poll_s=poll_s)


def follow(specs: list[TrialSpec], root: Path, followed: set[str], echo: Callable[[str], None] = print,
           poll_s: float | None = None, give_up_after_failed_queries: int = 30) -> dict[str, int]:
    """Wait until no trial of ``specs`` is running or pending, with a refreshed progress line
    (counts per state) and one line per trial as it finishes."""
    from bench.sweep import format_progress

    by_name = {s.dirname: s for s in specs}
    tty = sys.stdout.isatty() and echo is print
    announced: set[str] = set()
    started = time.monotonic()
    last_line = ""
    failed_queries = 0
    try:
        while True:
            report = collect_status(root, specs)
            counts = report.counts()
            for name, trial in report.trials.items():
                if name in followed and name not in announced and trial.state in (DONE, FAILED):
                    announced.add(name)
                    line = _finished_line(len(announced), len(followed), by_name[name], TrialDir(root / name),
                                          trial, format_progress)
                    if tty:
                        sys.stdout.write("\r\033[K")
                    echo(line)
                    last_line = ""
            live = counts[RUNNING] + counts[PENDING]
            failed_queries = failed_queries + 1 if report.errors else 0
            elapsed = time.monotonic() - started
            progress = f"[{elapsed:5.0f} s] {format_counts(counts)}"
            if report.errors:
                progress += f"  (no answer from the scheduler: {report.errors[0]})"
            if tty:
                sys.stdout.write("\r\033[K" + progress)
                sys.stdout.flush()
            elif progress.split("] ", 1)[1] != last_line:
                echo(progress)
                last_line = progress.split("] ", 1)[1]
            if not report.errors and live == 0:
                break
            if failed_queries >= give_up_after_failed_queries:
                echo(f"\nstopped following: the scheduler has not answered {failed_queries} times; the jobs may "
                     f"still run: bench status --results {root}")
                break
            # Poll often at first (short trials, tests), then every 10 s at most (squeue is shared).
            time.sleep(poll_s if poll_s is not None else min(10.0, 1.0 + elapsed / 20))
    except KeyboardInterrupt:
        if tty:
            sys.stdout.write("\n")
        # SLURM jobs do not hear this terminal's Ctrl-C; local workers (same process group) do.
        echo(f"stopped following: SLURM jobs go on, local workers stop; see bench status --results {root}")
        raise
    if tty:
        sys.stdout.write("\r\033[K" + progress + "\n")
        sys.stdout.flush()
    echo(f"{len(announced)} of {len(followed)} submitted trials finished in {time.monotonic() - started:.1f} s: "
         f"{format_counts(counts)}")
    unfinished = counts[FAILED] + counts[INCOMPLETE] + counts[NOT_STARTED]
    if unfinished:
        echo(f"{unfinished} trials did not finish: `bench status --results {root}` shows their errors and logs; "
             "rerun the same command to redo them (incomplete trials resume from their last checkpoint)")
    return counts


def _finished_line(i: int, total: int, spec: TrialSpec, trial: TrialDir, status: TrialStatus, format_progress) -> str:
    if status.state == DONE:
        summary = _read_json(trial.done_file) or {}
        if {"best", "last", "best_epoch", "seconds"} <= set(summary):
            return format_progress(i, total, spec, summary)
        return f"[{i}/{total}] {spec.label()}: done"
    failure = _read_json(trial.failed_file) or {}
    seconds = sum(m.get("seconds", 0.0) for m in trial.read_metrics())
    summary = {"state": FAILED, "seconds": seconds if math.isfinite(seconds) else 0.0,
               "error": failure.get("error", "see failed.json")}
    return format_progress(i, total, spec, summary)
