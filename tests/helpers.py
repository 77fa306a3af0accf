"""Helpers shared by test files (pytest puts tests/ on sys.path: `from helpers import ...`)."""
from __future__ import annotations

import time

from noisybench.core.spec import TrialSpec
from noisybench.results.store import TrialDir, TrialStore
from noisybench.results.summary import best_and_last


def epoch_metrics(results, spec: TrialSpec) -> list[dict]:
    """A trial's metrics lines without their wall-clock time: what must match between runs."""
    return [{k: v for k, v in m.items() if k != "seconds"} for m in TrialStore(results).trial(spec).read_metrics()]


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def finish_trial(path) -> None:
    """Mark a hand-written trial directory done as the trainer does: done.json certifies its epochs
    and the sha256 of its metrics.jsonl and spec.json, which every reader checks before counting it."""
    trial = TrialDir(path)
    trial.mark_done(best_and_last(trial.read_metrics()))


class Interrupted(BaseException):
    """Stands in for a kill: not an Exception, so the trial is left incomplete, not failed."""


def run_until_killed(spec: TrialSpec, results, monkeypatch, epoch: int) -> None:
    """Run ``spec`` and kill it as 0-based ``epoch`` starts (epochs before it are checkpointed)."""
    import pytest

    from noisybench.bench.trainer.loop import Trainer
    from noisybench.bench.trainer.trial import run_trial

    original = Trainer.train_epoch

    def dies(self, e, *args, **kwargs):
        if e == epoch:
            raise Interrupted()
        return original(self, e, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", dies)
    with pytest.raises(Interrupted):
        run_trial(spec, results, device="cpu")
    monkeypatch.setattr(Trainer, "train_epoch", original)
