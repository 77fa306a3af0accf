"""Submitting a sweep's trials through submitit, and the submission records it leaves."""
from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

import submitit

from noisybench.core.errors import BenchError
from noisybench.core.layout import SUBMISSION_DIR
from noisybench.core.spec import TrialSpec
from noisybench.results.paths import check_private_folder, private_folder
from noisybench.results.store import atomic_write_json
from noisybench.results.trial_function import TrialFunction
from noisybench.slurm.job import TrialBatch
from noisybench.slurm.options import (
    DEFAULT_LOCAL_WORKERS_ON_CPU,
    LOCAL_NO_LIMIT_MIN,
    LauncherOptions,
)


def chunk_trials(specs: list[TrialSpec], options: LauncherOptions, workers: int) -> list[list[TrialSpec]]:
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


def job_folders(results_root, options: LauncherOptions) -> Path:
    """Create (0700) or check <results>/.submitit and the job folder (--slurm-folder, when another):
    the pickled jobs there are what the workers run, so a folder that another user can write is
    refused in one line.  Returns the job folder."""
    root = Path(results_root).resolve()
    folders = [(root / SUBMISSION_DIR, "the job folder")]
    if options.folder:
        folders.append((Path(options.folder).expanduser().resolve(), "the job folder (--slurm-folder)"))
    for folder, what in folders:  # both checked before either is created: a refusal writes nothing
        check_private_folder(folder, what)
    return [private_folder(folder, what) for folder, what in folders][-1]


def submit(specs: list[TrialSpec], results_root: Path, options: LauncherOptions, trial_fn: TrialFunction,
           trial_kwargs: dict) -> dict:
    """Submit the trials, write the submission record and return it."""
    root = Path(results_root).resolve()
    submission = uuid.uuid4().hex[:12]
    folder = job_folders(root, options)
    gpu_ids = local_gpu_ids(trial_kwargs.get("device")) if options.launcher == "local" else []
    workers = options.workers or len(gpu_ids) or DEFAULT_LOCAL_WORKERS_ON_CPU
    chunks = chunk_trials(specs, options, workers)
    batch = TrialBatch(str(root), submission, trial_fn, trial_kwargs)
    arguments = [list(chunk) for chunk in chunks]  # the resolved trials themselves (pickled by submitit)
    # The record is written before any worker can start and completed as each job is submitted, so
    # that a submitter killed half-way still leaves a record of what it may have started.
    record = {
        "submission": submission,
        "launcher": options.launcher,
        "job": None,
        "submitted_at": time.time(),
        "host": socket.gethostname(),
        "log_folder": str(folder),
        "parameters": options.slurm_parameters() if options.launcher == "slurm" else
        {"workers": len(chunks), "gpus": gpu_ids},
        "tasks": [{"job_id": None, "stdout": None, "stderr": None,
                   "trials": [{"dir": s.dirname, "label": s.label()} for s in chunk]} for chunk in chunks],
    }
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(record["submitted_at"]))
    path = root / SUBMISSION_DIR / "submissions" / f"{stamp}_{options.launcher}_{submission}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)

    def submitted(task: dict, job) -> None:
        task.update(job_id=job.job_id, stdout=str(job.paths.stdout), stderr=str(job.paths.stderr))
        record["job"] = record["job"] or job.job_id.split("_")[0]
        atomic_write_json(path, record)

    try:
        if options.launcher == "slurm":
            executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=options.max_requeues)
            executor.update_parameters(**options.slurm_parameters())
            for task, job in zip(record["tasks"], executor.map_array(batch, arguments)):
                submitted(task, job)
        else:
            # No %j here: submitit's local controller would create a directory literally named "%j".
            executor = submitit.LocalExecutor(folder=folder, max_num_timeout=options.max_requeues)
            executor.update_parameters(timeout_min=options.time_min or LOCAL_NO_LIMIT_MIN)
            for i, (task, argument) in enumerate(zip(record["tasks"], arguments)):
                if gpu_ids:
                    executor.update_parameters(gpus_per_node=1, visible_gpus=(gpu_ids[i % len(gpu_ids)],))
                submitted(task, executor.submit(batch, argument))
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError,
            subprocess.CalledProcessError, OSError) as exc:
        message = " ".join(str(exc).split())[:400]
        raise BenchError(f"--launcher {options.launcher}: submission failed: {message}; check --partition, "
                         "--time, --mem and --slurm values against the cluster (sinfo, scontrol show partition)") from None
    return record


def load_submissions(results_root) -> list[dict]:
    """Every submission record under <results>/.submitit, oldest first."""
    folder = Path(results_root) / SUBMISSION_DIR / "submissions"
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a record cut by a crash names no job we could follow
    return sorted(records, key=lambda r: r.get("submitted_at", 0.0))


def describe_submission(record: dict) -> str:
    tasks = record["tasks"]
    trials = sum(len(t["trials"]) for t in tasks)
    if record["launcher"] == "slurm":
        kind = f"SLURM job array {record['job']}" if "_" in tasks[0]["job_id"] else f"SLURM job {record['job']}"
        return f"{kind}: {trials} trial{'s' * (trials != 1)} in {len(tasks)} task{'s' * (len(tasks) != 1)}"
    pids = ",".join(t["job_id"] for t in tasks)
    return (f"{len(tasks)} local worker process{'es' * (len(tasks) != 1)} (pid {pids}): "
            f"{trials} trial{'s' * (trials != 1)}")
