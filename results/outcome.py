"""How a trial ended, as the trial function returns it and every launcher reports it.

The trial function (noisybench.bench.trainer.run_trial) returns one :class:`TrialOutcome`; the
launchers, the SLURM jobs (slurm/job.py) and the sweep's bookkeeping (bench/launch.py) read its
fields and nothing else, and its :meth:`~TrialOutcome.progress_line` is the one line a finished
trial gets, whichever launcher ran it.  The four states:

    done         trained here to the end (or, ``skipped``, found finished: by an earlier run, or by
                 another process while this one waited)
    failed       it raised, or its loss went non-finite (failed.json holds the traceback); or a
                 submitted trial whose job ended before it finished
    held         another live process holds the trial: left alone, waited for at the end
    handed over  another process took its lease while this one was suspended and finished it:
                 not this run's to claim, nor a failure

done.json holds the numbers of a done trial (:meth:`TrialOutcome.from_summary` reads them back).
"""
from __future__ import annotations

from dataclasses import dataclass

from noisybench.core.layout import DONE, FAILED, HANDED_OVER, HELD

STATES = (DONE, FAILED, HELD, HANDED_OVER)


@dataclass(frozen=True)
class TrialOutcome:
    state: str
    best: float | None = None  # test accuracies as fractions (results/summary.py best_and_last)
    best_epoch: int | None = None
    last: float | None = None
    epochs: int | None = None
    seconds: float | None = None  # this call's training time; a failed trial's time until it failed
    resumed_from: int = 0  # the epoch a resumed trial went on from (0: from the start)
    skipped: bool = False  # done before this call: not trained here
    end_note: str | None = None  # why a method stopped before the protocol's last epoch
    error: str | None = None  # failed: the exception's first line
    holder: str | None = None  # held / handed over: who has the trial ("pid 42 on node-b")

    def __post_init__(self):
        if self.state not in STATES:
            raise ValueError(f"trial outcome state {self.state!r} is not one of {', '.join(STATES)}")

    @classmethod
    def from_summary(cls, summary: dict, skipped: bool = False) -> TrialOutcome:
        """A done trial from its summary: what the trainer writes to done.json (or reads back from it)."""
        return cls(DONE, best=summary.get("best"), best_epoch=summary.get("best_epoch"), last=summary.get("last"),
                   epochs=summary.get("epochs"), seconds=summary.get("seconds"),
                   resumed_from=summary.get("resumed_from") or 0, skipped=skipped, end_note=summary.get("end_note"))

    @classmethod
    def failed(cls, error: str, seconds: float) -> TrialOutcome:
        return cls(FAILED, error=error, seconds=seconds)

    @classmethod
    def held(cls, holder: str) -> TrialOutcome:
        return cls(HELD, holder=holder)

    @classmethod
    def handed_over(cls, holder: str) -> TrialOutcome:
        return cls(HANDED_OVER, holder=holder)

    @property
    def elsewhere(self) -> bool:
        """Another process has the trial (held, or handed over): this run waits for it, claims nothing."""
        return self.state in (HELD, HANDED_OVER)

    def progress_line(self, i: int, total: int, trial) -> str:
        """``[i/total] method noise seed s: best .. (epoch ..) last ..  t s`` -- or the failure, or who
        finished it."""
        head = f"[{i}/{total}] {trial.method:<12} {trial.noise:<10} seed {trial.seed}"
        if self.state == FAILED:
            return f"{head}: FAILED after {self.seconds or 0.0:.1f} s: {self.error}"
        if self.state == HANDED_OVER:
            return f"{head}: handed over to {self.holder}, which finished it (not trained here)"
        if self.state == HELD:
            return f"{head}: being trained by {self.holder}"
        if self.best is None or self.last is None:  # a done.json without its numbers (written by hand)
            return f"{head}: done"
        if self.skipped:  # finished by another process while this one waited or ran others
            return (f"{head}: finished by another process (best {100 * self.best:.2f}, last "
                    f"{100 * self.last:.2f}); not trained here")
        resumed = f", resumed at epoch {self.resumed_from}" if self.resumed_from else ""
        return (f"{head}: best {100 * self.best:.2f} (epoch {self.best_epoch}) "
                f"last {100 * self.last:.2f}  {self.seconds or 0.0:.1f} s{resumed}")
