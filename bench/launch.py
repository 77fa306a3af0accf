"""Running a sweep: the launcher ``--launcher`` names does the trials, this module the bookkeeping.

A launcher is the executor of a sweep's trials, with one shape (results/trial_function.py
``Launcher``): ``submit(trials)``, then ``collect()`` their outcomes as they end.

    inline   on this machine, under this command: one trial after another in this process, or
             K at a time on each GPU with --trials-per-gpu K (bench/inline.py)
    local    submitit's local executor: worker processes on this machine (slurm/launcher.py)
    slurm    one SLURM job array through submitit (slurm/launcher.py)

Each runs the same trial function (noisybench.bench.trainer.run_trial) with the same keyword
arguments, and the store is the only channel back.  :func:`run_sweep` does, once for all of them,
what they share: a bad --device stops the sweep before anything runs, a trial trained with
another recipe too (bench/checks.py), finished trials are skipped; then the counts, the failed
state, a progress line per trial with the time left, the trials another process holds waited
for at the end, and the closing "N trials run in S s (F failed)" line.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import torch

from noisybench.bench.checks import pending_trials
from noisybench.bench.inline import InlineLauncher
from noisybench.bench.trainer.device import resolve_device
from noisybench.bench.trainer.resolve import ResolvedTrial, as_resolved
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.layout import DONE, FAILED, HANDED_OVER, HELD
from noisybench.results.integrity import warn
from noisybench.results.outcome import TrialOutcome
from noisybench.results.paths import others_can_write
from noisybench.results.trial_function import Launcher, TrialFunction, run_when_free
from noisybench.slurm.options import LauncherOptions

Counts = dict[str, int]
NOT_FOLLOWED = "not followed"  # submitted, and still running when the launcher stopped following it


def resolved_all(trials: list, data_root=None) -> list[ResolvedTrial]:
    """The sweep's resolved trials as they are; bare TrialSpecs (built by hand) resolved once, here."""
    return [as_resolved(trial, data_root=data_root) for trial in trials]


def make_launcher(options: LauncherOptions, results_root, trial_fn: TrialFunction, trial_kwargs: dict,
                  device: torch.device, echo: Callable[[str], None] = print) -> Launcher:
    """The launcher ``options.launcher`` names (one of slurm/options.py LAUNCHERS)."""
    if options.launcher == "inline":
        return InlineLauncher(results_root, trial_fn, trial_kwargs, device, options.trials_per_gpu)
    from noisybench.slurm.launcher import SubmititLauncher  # imports submitit: only when asked for

    return SubmititLauncher(options, results_root, trial_fn, trial_kwargs, echo=echo)


class Tally:
    """The counts of a sweep, its progress lines and its closing line."""

    def __init__(self, todo: int, skipped: int):
        self.todo, self.finished, self.started = todo, 0, time.perf_counter()
        self.counts: Counts = {DONE: skipped, FAILED: 0}

    def add(self, trial, outcome: TrialOutcome, eta: bool = True) -> str:
        """Count a trial that ended: done, failed, or handed over (another process took its lease
        while this one was suspended, and finished it: not this sweep's to claim, nor a failure).
        Returns its progress line."""
        self.finished += 1
        self.counts[outcome.state] = self.counts.get(outcome.state, 0) + 1
        line = outcome.progress_line(self.finished, self.todo, trial)
        return self.with_eta(line) if eta else line

    def with_eta(self, line: str) -> str:
        """A progress line with the sweep's remaining trials and time at the mean pace so far."""
        left = self.todo - self.finished
        if left <= 0 or self.finished <= 0:
            return line
        seconds = (time.perf_counter() - self.started) / self.finished * left
        if seconds < 120:
            eta = f"{seconds:.0f} s"
        else:
            eta = f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
        return f"{line}  [{left} left, about {eta} to go]"

    def closing_line(self) -> str:
        extra = [f"{self.counts[key]} {key}" + (" to the end" if key == NOT_FOLLOWED else "")
                 for key in (HANDED_OVER, NOT_FOLLOWED) if self.counts.get(key)]
        return (f"{self.todo} trials run in {time.perf_counter() - self.started:.1f} s "
                f"({', '.join([f'{self.counts[FAILED]} failed', *extra])})")


def run_sweep(trials: list, results_root, options: LauncherOptions | None = None, trial_kwargs: dict | None = None,
              *, trial_fn: TrialFunction = run_trial, echo: Callable[[str], None] = print,
              rerun_stale: bool = False) -> Counts | None:
    """Run ``trials`` with the launcher ``options`` names and ``trial_fn(trial, results_root,
    **trial_kwargs)`` on each (trial_kwargs: device, data_root, checkpoint_every, feature_epochs and the
    arithmetic run settings).  ``rerun_stale`` (`--rerun-stale`): stale trials (bench/staleness.py) are
    moved aside and trained again instead of refused.  Returns the counts per state ({"done", "failed"} and, where there
    are any, "handed over" and "not followed"), or None when the launcher does not wait (--no-wait)."""
    options = options or LauncherOptions()
    trial_kwargs = dict(trial_kwargs or {})
    device = resolve_device(trial_kwargs.get("device"))  # this machine: a bad --device stops here, not in each worker
    if others_can_write(Path(results_root)):
        # Said, not refused: a shared group directory is a fair choice, and every file in it is read as data.
        warn(f"results directory {results_root} is writable by other users, who can replace its files (they are "
             f"read as data only, never run); chmod go-w {results_root} unless you share it on purpose")
    trials = resolved_all(trials, trial_kwargs.get("data_root"))
    launcher = make_launcher(options, results_root, trial_fn, trial_kwargs, device, echo)
    todo, skipped = pending_trials(trials, results_root, echo, trial_kwargs.get("feature_epochs", ()), rerun_stale,
                                   trial_kwargs.get("data_root"))
    if todo:
        launcher.submit(todo)
    if not launcher.waits:  # the jobs go on; bench status / bench table follow them
        if (line := launcher.how_to_follow()) is not None:
            echo(line)
        return None
    tally = Tally(len(todo), skipped)
    elsewhere: list[tuple[ResolvedTrial, TrialOutcome]] = []
    for trial, outcome in launcher.collect():
        if outcome.elsewhere:  # another process has it: waited for after the others
            if outcome.state == HELD:  # (a handed-over one: the trial function said so in one line)
                echo(f"{trial.label()}: being trained by {outcome.holder}; waited for after the others")
            elsewhere.append((trial, outcome))
            continue
        echo(tally.add(trial, outcome))
    here = dict(trial_kwargs, device=device, show_progress=sys.stdout.isatty())
    for trial, first in elsewhere:
        echo(tally.add(trial, run_when_free(trial_fn, trial, results_root, here, first), eta=False))
    if tally.finished < len(todo):
        tally.counts[NOT_FOLLOWED] = len(todo) - tally.finished
    if todo:
        echo(f"{tally.closing_line()} {launcher.where()}")
    if tally.counts[FAILED]:
        echo(f"{tally.counts[FAILED]} trials did not finish: `bench status --results {results_root}` shows their "
             "errors and logs; rerun the same command to redo them (incomplete trials resume from their last "
             "checkpoint)")
    return tally.counts


def run_inline(trials: list, results_root, *, trial_fn: TrialFunction = run_trial,
               echo: Callable[[str], None] = print, **trial_kwargs) -> Counts:
    """:func:`run_sweep` with the inline launcher, one trial after another in this process."""
    return run_sweep(trials, results_root, LauncherOptions(), trial_kwargs, trial_fn=trial_fn, echo=echo)


def run_packed(trials: list, results_root, *, trials_per_gpu: int, trial_fn: TrialFunction = run_trial,
               echo: Callable[[str], None] = print, **trial_kwargs) -> Counts:
    """:func:`run_sweep` with the inline launcher, ``trials_per_gpu`` trials at once on each GPU (on
    the CPU, that many processes sharing its cores), each in its own process."""
    return run_sweep(trials, results_root, LauncherOptions(trials_per_gpu=trials_per_gpu), trial_kwargs,
                     trial_fn=trial_fn, echo=echo)
