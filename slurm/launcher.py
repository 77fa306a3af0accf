"""Run a sweep's trials through submitit: ``bench run --launcher local|slurm``.

Every launcher runs the same function on the same TrialSpecs -- the trial function bench hands
it (noisybench.bench.trainer.run_trial), here wrapped in slurm/job.py's TrialBatch -- and the
trial store is the only channel back: the submitting process never reads a job's return value,
it reads the trial directories.

``slurm`` submits ONE job array (``--trials-per-job K`` trials per array task); ``local`` starts
``--workers N`` processes through submitit's LocalExecutor.  A task that is timed out or preempted
is requeued by submitit (TrialBatch is Checkpointable) and picks up where the store says: done
trials are skipped, an incomplete one resumes from its last epoch checkpoint.

The files: options.py (LauncherOptions), job.py (what runs in a job), submission.py (submitting
and its records), queue.py (squeue/sacct and local processes), status.py (each trial's state),
follow.py (the progress display), and this one, the entry bench's launcher table calls.

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
from typing import Callable

from noisybench.core.errors import BenchError
from noisybench.core.layout import DONE
from noisybench.core.spec import TrialSpec
from noisybench.slurm.follow import follow
from noisybench.results.trial_function import TrialFunction
from noisybench.slurm.options import LauncherOptions
from noisybench.slurm.status import PENDING, RUNNING, collect_status
from noisybench.slurm.submission import describe_submission, submit


def launch_trials(specs: list[TrialSpec], results_root, options: LauncherOptions, trial_fn: TrialFunction,
                  trial_kwargs: dict, echo: Callable[[str], None] = print,
                  poll_s: float | None = None) -> dict[str, int] | None:
    """Submit the trials of ``specs`` that are not done (nor queued already) and, with
    ``options.wait``, follow them to the end.  Returns the final counts, None without waiting.

    ``trial_fn`` is what every launcher runs on each spec (bench's run_trial), with ``trial_kwargs``
    (device, data_root, ...) as inline uses them.  The caller has checked what every launcher checks
    first (the device, the stored recipes: noisybench.bench.launch).
    """
    trial_kwargs = dict(trial_kwargs)
    if trial_kwargs.get("data_root") is not None:  # jobs may start elsewhere than this directory
        trial_kwargs["data_root"] = str(Path(trial_kwargs["data_root"]).expanduser().resolve())
    root = Path(results_root)
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
        submitted = submit(todo, root, options, trial_fn, trial_kwargs)
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
