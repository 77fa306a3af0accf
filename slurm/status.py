"""The status model of a results directory: each trial's state, joined from the store, the
submission records, the tasks' progress files and the scheduler (what `bench status` shows)."""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path

from noisybench.core.layout import DONE, FAILED, INCOMPLETE
from noisybench.core.spec import TrialSpec
from noisybench.results.integrity import verify_done
from noisybench.results.lease import live_holder
from noisybench.results.store import DamagedTrial, TrialDir
from noisybench.slurm.job import task_progress_file
from noisybench.slurm.queue import (
    SLURM_RUNNING_STATES,
    JobQueryError,
    local_job_alive,
    slurm_final_states,
    slurm_live_states,
)
from noisybench.slurm.submission import load_submissions

RUNNING, PENDING, NOT_STARTED = "running", "pending", "not started"
# The order `bench status` and the progress line show the states in.
# A trial that ended "done" but fails results/integrity.py's checks (never counted).
DAMAGED = "damaged"
# The order `bench status` and the progress line show the states in.
STATES = (DONE, RUNNING, PENDING, FAILED, INCOMPLETE, NOT_STARTED, DAMAGED)


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


def read_json_or_none(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _label_from_store(trial: TrialDir) -> str:
    record = read_json_or_none(trial.spec_file) or {}
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
            if task.get("job_id") is None:  # recorded, but its submitter stopped before submitting it
                continue
            for trial in task.get("trials", []):
                latest[trial["dir"]] = (record, task, trial.get("label", trial["dir"]))

    if specs is not None:
        names = {s.dirname: s.label() for s in specs}
    else:
        names = {}
        if root.is_dir():
            for path in sorted(root.iterdir()):
                if path.is_dir() and not path.name.startswith(".") and any(
                        (path / name).exists() for name in ("spec.json", "done.json", "metrics.jsonl")):
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
            try:
                verify_done(trial)
            except DamagedTrial as err:
                status.state, status.job_state = DAMAGED, str(err)
            continue
        holder = live_holder(trial.path)
        if holder is not None:  # the worker itself, alive: whatever its job or controller looks like
            status.state, status.job_state = RUNNING, f"held by {holder.describe()}"
            continue
        job_state = live.get(status.job_id) if task is not None else None
        status.job_state = job_state
        if job_state is not None:
            if job_state.split()[0] in SLURM_RUNNING_STATES:
                # A running task works through its trials in order: which one is it on?
                progress = read_json_or_none(task_progress_file(root, record["submission"], status.job_id)) or {}
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


def format_counts(counts: dict[str, int]) -> str:
    shown = [s for s in STATES if s not in (NOT_STARTED, DAMAGED) or counts.get(s)]
    return " | ".join(f"{s} {counts.get(s, 0)}" for s in shown)
