"""What the scheduler says of a job: squeue and sacct for SLURM, the process table for local jobs."""
from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

# squeue's states of a job that holds (or is about to hold) a CPU: its trial is running.
SLURM_RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING"}


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
