"""Following submitted trials to their end through the store: the collect step of the local and
slurm launchers (slurm/launcher.py).  While it waits it shows a refreshed count per state; it
yields each trial's outcome as the store shows it finished."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from noisybench.core.layout import DONE, FAILED, INCOMPLETE
from noisybench.core.spec import TrialSpec
from noisybench.results.outcome import TrialOutcome
from noisybench.results.store import TrialDir
from noisybench.slurm.status import (
    DAMAGED,
    PENDING,
    RUNNING,
    TrialStatus,
    collect_status,
    format_counts,
    read_json_or_none,
)


def follow(trials: list[TrialSpec], root: Path, echo: Callable[[str], None] = print, poll_s: float | None = None,
           give_up_after_failed_queries: int = 30) -> Iterator[tuple[TrialSpec, TrialOutcome]]:
    """Wait until no trial of ``trials`` is running or pending, with a refreshed progress line
    (counts per state); yield (trial, outcome) as each one is done or failed, then, once nothing
    runs, each one its job left unfinished (failed: see :func:`unfinished`).  Stops early, saying
    so, when the scheduler does not answer ``give_up_after_failed_queries`` times in a row."""
    tty = sys.stdout.isatty() and echo is print
    announced: set[str] = set()
    started = time.monotonic()
    last_line = ""
    failed_queries = 0
    try:
        while True:
            report = collect_status(root, trials)
            counts = report.counts()
            for trial in trials:
                status = report.trials[trial.dirname]
                if trial.dirname not in announced and status.state in (DONE, FAILED):
                    announced.add(trial.dirname)
                    if tty:
                        sys.stdout.write("\r\033[K")
                    yield trial, finished(TrialDir(root / trial.dirname), status)
                    last_line = ""
            live = counts[RUNNING] + counts[PENDING]
            failed_queries = failed_queries + 1 if report.errors else 0
            elapsed = time.monotonic() - started
            progress = f"[{elapsed:5.0f} s] {format_counts(counts)}"
            if report.errors:
                progress += f"  (no answer from the scheduler: {report.errors[0]})"
            if tty:
                sys.stdout.write("\r\033[K" + progress)
                sys.stdout.flush()
            elif progress.split("] ", 1)[1] != last_line:
                echo(progress)
                last_line = progress.split("] ", 1)[1]
            if not report.errors and live == 0:
                break
            if failed_queries >= give_up_after_failed_queries:
                echo(f"\nstopped following: the scheduler has not answered {failed_queries} times; the jobs may "
                     f"still run: bench status --results {root}")
                return
            # Poll often at first (short trials, tests), then every 10 s at most (squeue is shared).
            time.sleep(poll_s if poll_s is not None else min(10.0, 1.0 + elapsed / 20))
    except KeyboardInterrupt:
        if tty:
            sys.stdout.write("\n")
        # SLURM jobs do not hear this terminal's Ctrl-C; local workers (same process group) do.
        echo(f"stopped following: SLURM jobs go on, local workers stop; see bench status --results {root}")
        raise
    if tty:
        sys.stdout.write("\r\033[K" + progress + "\n")
        sys.stdout.flush()
    for trial in trials:
        if trial.dirname not in announced:
            yield trial, unfinished(TrialDir(root / trial.dirname), report.trials[trial.dirname])


def finished(trial: TrialDir, status: TrialStatus) -> TrialOutcome:
    """The outcome of a trial the store shows done (done.json's numbers) or failed (failed.json's error)."""
    if status.state == DONE:
        return TrialOutcome.from_summary(read_json_or_none(trial.done_file) or {})
    failure = read_json_or_none(trial.failed_file) or {}
    return TrialOutcome.failed(failure.get("error", "see failed.json"), _seconds(trial))


def unfinished(trial: TrialDir, status: TrialStatus) -> TrialOutcome:
    """A trial left unfinished when nothing runs any more (its job cancelled, timed out for good,
    or killed): failed for this sweep; a rerun resumes it from its last checkpoint."""
    if status.state == DAMAGED:
        return TrialOutcome.failed(f"finished, but its files fail the store's checks ({status.job_state}); a rerun "
                                   "moves it aside and trains it again", _seconds(trial))
    why = {INCOMPLETE: "incomplete; a rerun resumes it from its last checkpoint"}.get(status.state, status.state)
    return TrialOutcome.failed(f"its job ended before the trial finished ({why})", _seconds(trial))


def _seconds(trial: TrialDir) -> float:
    seconds = sum(m.get("seconds", 0.0) for m in trial.read_metrics())
    return seconds if math.isfinite(seconds) else 0.0
