"""The local and slurm launchers: ``bench run --launcher local|slurm`` runs a sweep's trials
through submitit.

Like every launcher (results/trial_function.py ``Launcher``) they submit the trials, then collect
their outcomes; the sweep (bench/launch.py) does the bookkeeping.  They run the same function on
the same trials as inline -- the trial function bench hands them (noisybench.bench.trainer.run_trial),
here wrapped in slurm/job.py's TrialBatch -- and the trial store is the only channel back: the
submitting process never reads a job's return value, it follows the trial directories.

``slurm`` submits ONE job array (``--trials-per-job K`` trials per array task); ``local`` starts
``--workers N`` processes through submitit's LocalExecutor.  A task that is timed out or preempted
is requeued by submitit (TrialBatch is Checkpointable) and picks up where the store says: done
trials are skipped, an incomplete one resumes from its last epoch checkpoint.

The files: options.py (LauncherOptions), job.py (what runs in a job), submission.py (submitting
and its records), queue.py (squeue/sacct and local processes), status.py (each trial's state),
follow.py (the collect step: following the store), and this one, the launcher itself.

What is recorded under ``<results>/.submitit`` (whatever ``--slurm-folder`` says, so that
``bench status --results DIR`` needs nothing else):

    submissions/<time>_<launcher>_<job>.json  one per submission: each job / array task, the
                                               trials it runs (in order) and its log files
    tasks/<submission>_<job id>.json          written by the running task: the trial it is on
                                               and the outcome of those it has finished
    %j/                                        submitit's pickles and logs (default --slurm-folder)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from noisybench.core.errors import BenchError
from noisybench.core.layout import DONE
from noisybench.core.spec import TrialSpec
from noisybench.results.outcome import TrialOutcome
from noisybench.results.trial_function import TrialFunction
from noisybench.slurm.follow import follow
from noisybench.slurm.options import LauncherOptions
from noisybench.slurm.status import PENDING, RUNNING, collect_status
from noisybench.slurm.submission import describe_submission, job_folders, submit


class SubmititLauncher:
    """``--launcher local`` or ``slurm``: submit the trials not already queued or running as jobs,
    then collect by following the store (with ``--no-wait``, collect nothing)."""

    def __init__(self, options: LauncherOptions, results_root, trial_fn: TrialFunction, trial_kwargs: dict,
                 echo: Callable[[str], None] = print, poll_s: float | None = None):
        # The job folder first: a folder others can write is refused before anything is moved or written.
        job_folders(results_root, options)
        self.options, self.results_root, self.root = options, results_root, Path(results_root)
        self.trial_fn, self.echo, self.poll_s = trial_fn, echo, poll_s
        self.trial_kwargs = dict(trial_kwargs)
        if self.trial_kwargs.get("data_root") is not None:  # jobs may start elsewhere than this directory
            self.trial_kwargs["data_root"] = str(Path(self.trial_kwargs["data_root"]).expanduser().resolve())
        self.waits = options.wait
        self.trials: list[TrialSpec] = []
        self.queued, self.queued_jobs = 0, []  # trials a live job has queued or runs, and those jobs
        self.submitted: dict | None = None

    def submit(self, trials: list[TrialSpec]) -> None:
        """Submit those of ``trials`` that no live job has queued or runs (nor a live process holds);
        those it has are followed, not submitted again."""
        before = collect_status(self.root, trials)
        if before.errors and self.options.launcher == "slurm":
            raise BenchError(f"--launcher slurm: cannot see the queue ({before.errors[0]}); is slurmctld up? "
                             "(sinfo should answer; for a test cluster: slurm/start_cluster.sh)")
        queued = before.in_state(RUNNING) + before.in_state(PENDING)
        if queued:
            self.queued, self.queued_jobs = len(queued), sorted({t.job_id for t in queued if t.job_id})
            by = f"job {', '.join(self.queued_jobs)}" if self.queued_jobs else "another process"
            self.echo(f"{len(queued)} trials already queued or running ({by}): not submitted again")
        # (done: finished by another process since the sweep's check; followed, and reported as done)
        todo = [t for t in trials if before.trials[t.dirname].state not in (DONE, RUNNING, PENDING)]
        if todo:
            self.submitted = submit(todo, self.root, self.options, self.trial_fn, self.trial_kwargs)
            self.echo(f"submitted {describe_submission(self.submitted)}; logs in {self.submitted['log_folder']}")
        self.trials = list(trials)

    def collect(self) -> Iterator[tuple[TrialSpec, TrialOutcome]]:
        if self.waits and self.trials:
            yield from follow(self.trials, self.root, echo=self.echo, poll_s=self.poll_s)

    def where(self) -> str:
        if self.options.launcher == "local":
            return "in local worker processes"
        ids = [*self.queued_jobs, *([self.submitted["job"]] if self.submitted else [])]
        jobs = sorted({j.split("_")[0] for j in ids})
        return "on SLURM" + (f" (job {', '.join(jobs)})" if jobs else "")

    def how_to_follow(self) -> str | None:
        if not (self.submitted or self.queued):
            return None
        submitted = self.submitted
        cancel = (f"scancel {submitted['job']}" if submitted and self.options.launcher == "slurm" else
                  f"kill {' '.join(t['job_id'] for t in submitted['tasks'])}" if submitted else "")
        return (f"follow it with: bench status --results {self.results_root}; when it is done: "
                f"bench table --results {self.results_root}" + (f"; cancel with: {cancel}" if cancel else ""))
