"""The one function every launcher runs on each trial, as this floor and those above see it.

The trial function itself (noisybench.bench.trainer.run_trial) lives above: the launchers are handed
it, so the store, the SLURM jobs and the sweep's checks never import the trainer.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from noisybench.core.layout import HANDED_OVER, HELD
from noisybench.results.lease import wait_while_held

TrialFunction = Callable[..., dict]  # run_trial(trial, results_root, **trial_kwargs) -> summary


def run_once_free(trial_fn: TrialFunction, trial, results_root, trial_kwargs: dict) -> dict:
    """Wait while another live process holds the trial, then run the trial function on it: it skips
    a trial the holder finished and resumes (or redoes) one it left.  (Handed over again -- this
    process suspended past the stale limit once more -- it waits again.)"""
    while True:
        wait_while_held(Path(results_root) / trial.dirname)
        summary = trial_fn(trial, results_root, **trial_kwargs)
        if summary.get("state") not in (HELD, HANDED_OVER):
            return summary
        time.sleep(0.5)  # its holder is gone, but the kernel has not dropped its lock yet
