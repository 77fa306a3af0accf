"""Following submitted trials to the end: a refreshed count per state and a line per finished trial."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Callable

from noisybench.core.layout import DONE, FAILED, INCOMPLETE
from noisybench.core.spec import TrialSpec
from noisybench.results.store import TrialDir
from noisybench.results.summary import format_progress
from noisybench.slurm.status import (
    NOT_STARTED,
    PENDING,
    RUNNING,
    TrialStatus,
    collect_status,
    format_counts,
    read_json_or_none,
)


def follow(specs: list[TrialSpec], root: Path, followed: set[str], echo: Callable[[str], None] = print,
           poll_s: float | None = None, give_up_after_failed_queries: int = 30) -> dict[str, int]:
    """Wait until no trial of ``specs`` is running or pending, with a refreshed progress line
    (counts per state) and one line per trial as it finishes."""
    by_name = {s.dirname: s for s in specs}
    tty = sys.stdout.isatty() and echo is print
    announced: set[str] = set()
    started = time.monotonic()
    last_line = ""
    failed_queries = 0
    try:
        while True:
            report = collect_status(root, specs)
            counts = report.counts()
            for name, trial in report.trials.items():
                if name in followed and name not in announced and trial.state in (DONE, FAILED):
                    announced.add(name)
                    line = _finished_line(len(announced), len(followed), by_name[name], TrialDir(root / name),
                                          trial)
                    if tty:
                        sys.stdout.write("\r\033[K")
                    echo(line)
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
                break
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
    echo(f"{len(announced)} of {len(followed)} submitted trials finished in {time.monotonic() - started:.1f} s: "
         f"{format_counts(counts)}")
    unfinished = counts[FAILED] + counts[INCOMPLETE] + counts[NOT_STARTED]
    if unfinished:
        echo(f"{unfinished} trials did not finish: `bench status --results {root}` shows their errors and logs; "
             "rerun the same command to redo them (incomplete trials resume from their last checkpoint)")
    return counts


def _finished_line(i: int, total: int, spec: TrialSpec, trial: TrialDir, status: TrialStatus) -> str:
    if status.state == DONE:
        summary = read_json_or_none(trial.done_file) or {}
        if {"best", "last", "best_epoch", "seconds"} <= set(summary):
            return format_progress(i, total, spec, summary)
        return f"[{i}/{total}] {spec.label()}: done"
    failure = read_json_or_none(trial.failed_file) or {}
    seconds = sum(m.get("seconds", 0.0) for m in trial.read_metrics())
    summary = {"state": FAILED, "seconds": seconds if math.isfinite(seconds) else 0.0,
               "error": failure.get("error", "see failed.json")}
    return format_progress(i, total, spec, summary)
