"""The one function every launcher runs on each trial, and the shape of a launcher, as this floor
and those above see them.

The trial function itself (noisybench.bench.trainer.run_trial) lives above: the launchers are handed
it, so the store, the SLURM jobs and the sweep's checks never import the trainer.  It returns a
:class:`~noisybench.results.outcome.TrialOutcome`.

A launcher -- what ``bench run --launcher NAME`` picks: inline (bench/inline.py), local and slurm
(slurm/launcher.py) -- is the executor of a sweep's trials, in two steps: :meth:`Launcher.submit`
the trials, then :meth:`Launcher.collect` their outcomes as they end.  The sweep (bench/launch.py)
does the bookkeeping around it once for all of them: the trials already done, the counts, the
failures, the progress lines, the trials another process holds.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator, Protocol

from noisybench.core.layout import HANDED_OVER
from noisybench.results.lease import wait_while_held
from noisybench.results.outcome import TrialOutcome

TrialFunction = Callable[..., TrialOutcome]  # run_trial(trial, results_root, **trial_kwargs) -> outcome


class Launcher(Protocol):
    """The executor of a sweep's trials (``--launcher``): submit, then collect."""

    waits: bool  # whether collect() follows the trials to their end (not with --no-wait)

    def submit(self, trials: list) -> None:
        """Start (or queue) ``trials``, the sweep's trials not yet done; it may print what it submitted."""

    def collect(self) -> Iterator[tuple[object, TrialOutcome]]:
        """(trial, outcome) of each submitted trial as it ends, in the order they end; nothing when
        the launcher does not wait.  A held or handed-over outcome: the sweep waits for that trial."""

    def where(self) -> str:
        """Where the trials ran, closing the sweep's last line ("on cpu")."""

    def how_to_follow(self) -> str | None:
        """For a launcher that does not wait: the line that says how to follow what it submitted."""


def run_once_free(trial_fn: TrialFunction, trial, results_root, trial_kwargs: dict) -> TrialOutcome:
    """Wait while another live process holds the trial, then run the trial function on it: it skips
    a trial the holder finished and resumes (or redoes) one it left.  (Handed over again -- this
    process suspended past the stale limit once more -- it waits again.)"""
    while True:
        wait_while_held(Path(results_root) / trial.dirname)
        outcome = trial_fn(trial, results_root, **trial_kwargs)
        if not outcome.elsewhere:
            return outcome
        time.sleep(0.5)  # its holder is gone, but the kernel has not dropped its lock yet


def run_when_free(trial_fn: TrialFunction, trial, results_root, trial_kwargs: dict,
                  first: TrialOutcome) -> TrialOutcome:
    """The final outcome of a trial whose first try found it elsewhere (``first``: held or handed
    over): waited for, and trained here if its holder left it unfinished.  One this process handed
    over and the taker finished stays handed over -- not this run's to claim."""
    outcome = run_once_free(trial_fn, trial, results_root, trial_kwargs)
    if first.state == HANDED_OVER and outcome.skipped:
        return TrialOutcome.handed_over(first.holder)
    return outcome
