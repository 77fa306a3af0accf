"""The launcher table: every way `bench run` can run a sweep's trials, each handed the same trial
function (noisybench.bench.trainer.run_trial) and the same keyword arguments for it.

    inline   one trial after another, in this process
    packed   K trials at once on each GPU, one process each (`--trials-per-gpu K`)
    local    submitit's local executor: worker processes on this machine (noisybench.slurm)
    slurm    one SLURM job array through submitit (noisybench.slurm)

The store is the only channel back from every launcher.  :func:`run_sweep` does what they all
share -- a bad --device or a trial trained with another recipe stops the sweep before anything
runs -- and then calls the launcher's entry.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from noisybench.bench.checks import (
    check_label_files,
    check_stored_recipes,
    finish_held,
    pending_trials,
    set_aside_damaged,
)
from noisybench.bench.packing import process_devices, run_trials_packed
from noisybench.bench.trainer.device import resolve_device
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.layout import FAILED, HANDED_OVER, HELD
from noisybench.bench.trainer.resolve import ResolvedTrial, as_resolved
from noisybench.results.integrity import warn
from noisybench.results.paths import others_can_write
from noisybench.results.store import TrialStore
from noisybench.results.summary import format_progress
from noisybench.results.trial_function import TrialFunction
from noisybench.slurm.launcher import launch_trials
from noisybench.slurm.options import LauncherOptions
from noisybench.slurm.submission import job_folders

Counts = dict[str, int]


def resolved_all(trials: list, data_root=None) -> list[ResolvedTrial]:
    """The sweep's resolved trials as they are; bare TrialSpecs (built by hand) resolved once, here."""
    return [as_resolved(trial, data_root=data_root) for trial in trials]


def tally(counts: Counts, summary: dict) -> None:
    """Count a trial that ended here: done, failed, or handed over (another process took its lease
    while this one was suspended, and finished it: not this sweep's to claim, nor a failure)."""
    state = summary.get("state")
    key = FAILED if state == FAILED else HANDED_OVER if state == HANDED_OVER else "done"
    counts[key] = counts.get(key, 0) + 1


def after_waiting(spec: ResolvedTrial, summary: dict, handed: dict[str, str]) -> dict:
    """The summary of a trial waited for: one this sweep handed over and the taker finished (the
    trial function skipped it as done) stays handed over."""
    if spec.dirname in handed and summary.get("skipped"):
        return {"state": HANDED_OVER, "holder": handed[spec.dirname]}
    return summary


def sweep_line(todo: int, started: float, counts: Counts) -> str:
    handed = counts.get(HANDED_OVER, 0)
    return (f"{todo} trials run in {time.perf_counter() - started:.1f} s ({counts[FAILED]} failed"
            + (f", {handed} handed over" if handed else "") + ")")


def with_eta(line: str, finished: int, total: int, started: float) -> str:
    """A progress line with the sweep's remaining trials and time at the mean pace so far."""
    left = total - finished
    if left <= 0 or finished <= 0:
        return line
    seconds = (time.perf_counter() - started) / finished * left
    if seconds < 120:
        eta = f"{seconds:.0f} s"
    else:
        eta = f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
    return f"{line}  [{left} left, about {eta} to go]"


@dataclass(frozen=True)
class Launch:
    """How a sweep is run: the launcher options, the trial function's keyword arguments
    (device, data_root, checkpoint_every, feature_epochs) and, for `packed`, K."""

    options: LauncherOptions = field(default_factory=LauncherOptions)
    trial_kwargs: dict = field(default_factory=dict)
    trials_per_gpu: int = 1
    echo: Callable[[str], None] = print

    @property
    def launcher(self) -> str:
        if self.options.launcher == "inline" and self.trials_per_gpu > 1:
            return "packed"
        return self.options.launcher


def run_inline(specs: list[ResolvedTrial], results_root, *, trial_fn: TrialFunction = run_trial, device=None,
               data_root=None, echo: Callable[[str], None] = print, checkpoint_every: int = 1,
               feature_epochs: tuple[int, ...] = (), **settings) -> Counts:
    """Run the trials not yet done, one after another, in this process.

    ``feature_epochs``: save the training set's penultimate features after these epochs
    (``bench run --save-features``).  ``settings``: the trial function's arithmetic run settings
    (memory_format, fused, autotune: bench/trainer/arithmetic.py)."""
    todo, skipped = pending_trials(resolved_all(specs, data_root), results_root, echo, feature_epochs)
    torch_device = resolve_device(device)
    counts = {"done": skipped, "failed": 0}
    show_progress = sys.stdout.isatty()
    started = time.perf_counter()
    kwargs = dict(device=torch_device, data_root=data_root, show_progress=show_progress,
                  checkpoint_every=checkpoint_every, feature_epochs=feature_epochs, **settings)
    held, handed, finished = [], {}, 0
    for spec in todo:
        summary = trial_fn(spec, results_root, **kwargs)
        if summary.get("state") in (HELD, HANDED_OVER):
            if summary["state"] == HELD:
                echo(f"{spec.label()}: being trained by {summary['holder']}; waited for after the others")
            else:  # the trial function said so in one line; waited for like a held one
                handed[spec.dirname] = summary["holder"]
            held.append(spec)
            continue
        finished += 1
        tally(counts, summary)
        echo(with_eta(format_progress(finished, len(todo), spec, summary), finished, len(todo), started))
    for spec, summary in finish_held(held, results_root, trial_fn, kwargs):
        finished += 1
        summary = after_waiting(spec, summary, handed)
        tally(counts, summary)
        echo(format_progress(finished, len(todo), spec, summary))
    if todo:
        echo(f"{sweep_line(len(todo), started, counts)} on {torch_device}")
    return counts


def run_packed(specs: list[ResolvedTrial], results_root, *, trials_per_gpu: int, trial_fn: TrialFunction = run_trial,
               device=None, data_root=None, echo: Callable[[str], None] = print, checkpoint_every: int = 1,
               feature_epochs: tuple[int, ...] = (), **settings) -> Counts:
    """Like :func:`run_inline`, but ``trials_per_gpu`` trials at once on each GPU (on the CPU, that
    many processes sharing its cores), each in its own process running the same trial function.

    One trial of a small model cannot fill a large GPU; several can (`bench speed --pack` measures
    how much that gains).  Same counts and progress lines as run_inline, in the order trials end.
    """
    todo, skipped = pending_trials(resolved_all(specs, data_root), results_root, echo, feature_epochs)
    torch_device = resolve_device(device)
    counts = {"done": skipped, "failed": 0}
    started = time.perf_counter()
    finished = run_trials_packed(todo, results_root, trial_fn, trials_per_gpu=trials_per_gpu, device=torch_device,
                                 data_root=data_root, checkpoint_every=checkpoint_every,
                                 feature_epochs=feature_epochs, **settings)
    held, handed, done_here = [], {}, 0
    for spec, summary in finished:
        if summary.get("state") in (HELD, HANDED_OVER):
            if summary["state"] == HANDED_OVER:  # its worker said so in one line
                handed[spec.dirname] = summary["holder"]
            held.append(spec)
            continue
        done_here += 1
        tally(counts, summary)
        echo(with_eta(format_progress(done_here, len(todo), spec, summary), done_here, len(todo), started))
    kwargs = dict(device=torch_device, data_root=data_root, checkpoint_every=checkpoint_every,
                  feature_epochs=feature_epochs, **settings)
    for spec, summary in finish_held(held, results_root, trial_fn, kwargs):
        done_here += 1
        summary = after_waiting(spec, summary, handed)
        tally(counts, summary)
        echo(format_progress(done_here, len(todo), spec, summary))
    if todo:
        devices = process_devices(torch_device)
        echo(f"{sweep_line(len(todo), started, counts)} on {', '.join(devices)}, {trials_per_gpu} at a time on each")
    return counts


def _inline(specs: list[ResolvedTrial], results_root, trial_fn: TrialFunction, launch: Launch) -> Counts:
    return run_inline(specs, results_root, trial_fn=trial_fn, echo=launch.echo, **launch.trial_kwargs)


def _packed(specs: list[ResolvedTrial], results_root, trial_fn: TrialFunction, launch: Launch) -> Counts:
    return run_packed(specs, results_root, trials_per_gpu=launch.trials_per_gpu, trial_fn=trial_fn,
                      echo=launch.echo, **launch.trial_kwargs)


def _submitit(specs: list[ResolvedTrial], results_root, trial_fn: TrialFunction, launch: Launch) -> Counts | None:
    # The job folder first: a folder others can write is refused before anything is moved or written.
    job_folders(results_root, launch.options)
    # What inline and packed check in pending_trials; the submitit launcher counts its own skips.
    specs = resolved_all(specs, launch.trial_kwargs.get("data_root"))
    store = TrialStore(results_root)
    check_stored_recipes(specs, store)
    check_label_files(specs, store)
    set_aside_damaged(specs, results_root, launch.echo)
    return launch_trials(specs, results_root, launch.options, trial_fn, launch.trial_kwargs, echo=launch.echo)


# name -> entry(specs, results_root, trial_fn, launch) -> final counts per state (None: not waited for)
LAUNCHERS: dict[str, Callable[[list[ResolvedTrial], object, TrialFunction, Launch], Counts | None]] = {
    "inline": _inline,
    "packed": _packed,
    "local": _submitit,
    "slurm": _submitit,
}


def run_sweep(specs: list[ResolvedTrial], results_root, launch: Launch,
              trial_fn: TrialFunction = run_trial) -> Counts | None:
    """Run ``specs`` with the launcher ``launch`` names; each entry first checks the stored trials
    (recipes, label files, damaged ones) once."""
    resolve_device(launch.trial_kwargs.get("device"))  # this machine: a bad --device stops here, not in each worker
    if others_can_write(Path(results_root)):
        # Said, not refused: a shared group directory is a fair choice, and every file in it is read as data.
        warn(f"results directory {results_root} is writable by other users, who can replace its files (they are "
             f"read as data only, never run); chmod go-w {results_root} unless you share it on purpose")
    return LAUNCHERS[launch.launcher](specs, results_root, trial_fn, launch)
