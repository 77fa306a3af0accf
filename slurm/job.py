"""What runs in a submitit job: a batch of trials one after another, with a progress record.

The trial function is handed in (it is pickled by reference, so the worker imports it from its
installed module): this package never imports the trainer.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import submitit

from noisybench.core.layout import FAILED, SUBMISSION_DIR
from noisybench.results.store import atomic_write_json
from noisybench.results.trial_function import TrialFunction, run_when_free


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

    A trial that raises is recorded as failed by the trial function and the batch goes on with the next;
    one another process holds is waited for (results/trial_function.py run_when_free, as the sweep
    waits for such trials), so the task's record says how each of its trials ended.
    On a timeout or preemption submitit calls :meth:`checkpoint` and requeues the same batch;
    the requeued task skips the trials already done and resumes the interrupted one from its
    last epoch checkpoint, so nothing beyond the store has to be saved.
    """

    def __init__(self, results_root: str, submission: str, trial_fn: TrialFunction, trial_kwargs: dict):
        self.results_root = results_root
        self.submission = submission
        self.trial_fn = trial_fn
        self.trial_kwargs = dict(trial_kwargs)

    def __call__(self, trials: list) -> list[dict]:
        """``trials``: the resolved trials of this task (pickled by submitit, as the trial function is),
        trained as the sweep resolved them -- the job resolves nothing again.  Returns each trial's
        final state (submitit keeps it; the submitting process reads the store instead)."""
        import torch

        threads = _requested_threads()
        if threads:
            # On a cluster that does not bind tasks to their CPUs, torch would use every core.
            torch.set_num_threads(threads)
        job_id = submitit.JobEnvironment().job_id
        progress = TaskProgress(Path(self.results_root), self.submission, job_id)
        outcomes = []
        for i, trial in enumerate(trials, 1):
            progress.start(trial.dirname)
            print(f"noisybench: trial {trial.label()} -> {Path(self.results_root) / trial.dirname}", flush=True)
            outcome = self.trial_fn(trial, self.results_root, **self.trial_kwargs)
            if outcome.elsewhere:
                # Another process trains it (a rerun's worker, one whose controller was killed, or
                # the one that took it over while this task was suspended: a requeued task's
                # predecessor that is still alive is the same race).
                print(f"noisybench: trial {trial.label()} is being trained by {outcome.holder}; waiting", flush=True)
                outcome = run_when_free(self.trial_fn, trial, self.results_root, self.trial_kwargs, outcome)
            progress.finish(trial.dirname, outcome.state)
            if outcome.state == FAILED:
                print(f"noisybench: trial {trial.label()} failed: {outcome.error} "
                      f"(traceback in {Path(self.results_root) / trial.dirname / 'failed.json'})",
                      file=sys.stderr, flush=True)
            print(outcome.progress_line(i, len(trials), trial), flush=True)
            outcomes.append({"trial": trial.dirname, "state": outcome.state})
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
    return Path(root) / SUBMISSION_DIR / "tasks" / f"{submission}_{job_id}.json"
