"""The inline launcher: ``bench run`` (``--launcher inline``, the default) runs the sweep's trials on
this machine, under this command -- one after another in this process, or, with
``--trials-per-gpu K``, K at a time on each GPU, one process each (bench/packing.py).

Like every launcher (results/trial_function.py ``Launcher``) it submits the trials, then collects
their outcomes as they end; here submitting only notes them, and collecting runs them.  The sweep
(bench/launch.py) does the bookkeeping.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import torch

from noisybench.bench.packing import process_devices, run_trials_packed
from noisybench.bench.trainer.resolve import ResolvedTrial
from noisybench.results.outcome import TrialOutcome
from noisybench.results.trial_function import TrialFunction


class InlineLauncher:
    waits = True  # it runs the trials while the sweep collects them

    def __init__(self, results_root, trial_fn: TrialFunction, trial_kwargs: dict, device: torch.device,
                 trials_per_gpu: int = 1):
        self.root, self.trial_fn = Path(results_root), trial_fn
        self.device, self.trials_per_gpu = device, trials_per_gpu
        self.trial_kwargs = {k: v for k, v in trial_kwargs.items() if k != "device"}
        self.trials: list[ResolvedTrial] = []

    def submit(self, trials: list[ResolvedTrial]) -> None:
        self.trials = list(trials)

    def collect(self) -> Iterator[tuple[ResolvedTrial, TrialOutcome]]:
        if self.trials_per_gpu > 1:
            # One trial of a small model cannot fill a large GPU; several can (`bench speed --pack`
            # measures how much that gains).  Outcomes come in the order the trials end.
            yield from run_trials_packed(self.trials, self.root, self.trial_fn, self.trial_kwargs,
                                         trials_per_gpu=self.trials_per_gpu, device=self.device)
            return
        kwargs = dict(self.trial_kwargs, device=self.device, show_progress=sys.stdout.isatty())
        for trial in self.trials:
            yield trial, self.trial_fn(trial, self.root, **kwargs)

    def where(self) -> str:
        if self.trials_per_gpu > 1:
            return f"on {', '.join(process_devices(self.device))}, {self.trials_per_gpu} at a time on each"
        return f"on {self.device}"

    def how_to_follow(self) -> None:
        return None  # it always waits
