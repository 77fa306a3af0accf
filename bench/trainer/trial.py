"""One trial, run or resumed into the store: the function every launcher runs."""
from __future__ import annotations

import time
import traceback

import torch

from noisybench.bench.trainer.device import resolve_device
from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.records import spec_record
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.spec import TrialSpec
from noisybench.results.store import TrialStore, atomic_write_json
from noisybench.results.summary import best_and_last


def run_trial(spec: TrialSpec, results_root, *, device: str | torch.device | None = None, data_root=None,
              show_progress: bool = False, checkpoint_every: int = 1, feature_epochs: tuple[int, ...] = ()) -> dict:
    """Run (or resume) one trial into the store and return its summary.

    ``feature_epochs``: 1-based epochs after whose evaluation the training set's penultimate
    features are saved (features_e{E}.npz); they are diagnostics and not part of the spec.

    A trial that raises is recorded as failed (failed.json with the traceback) and its
    summary says so; the caller's sweep goes on.  KeyboardInterrupt leaves it incomplete.
    """
    store = TrialStore(results_root)
    trial = store.trial(spec)
    if trial.state == "done":
        return {**trial.read_done(), "skipped": True}
    started = time.perf_counter()
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    try:
        setup = setup_trial(spec, torch_device, data_root)
        resumable = trial.state == "incomplete" and trial.checkpoint_file.exists()
        trial.start(spec_record(setup), fresh=not resumable)
        trainer = Trainer(setup, trial, show_progress=show_progress, checkpoint_every=checkpoint_every,
                          feature_epochs=feature_epochs)
        start_epoch = trainer.resume_point() if resumable else 0
        trainer.run(start_epoch)
        summary = {**best_and_last(trial.read_metrics()), "seconds": time.perf_counter() - started,
                   "resumed_from": start_epoch}
        if trainer.end_note:
            summary["end_note"] = trainer.end_note
        trial.mark_done(summary)
        return summary
    except Exception as exc:  # noqa: BLE001 -- a failing trial is recorded, the sweep goes on
        trial.path.mkdir(parents=True, exist_ok=True)
        if not trial.spec_file.exists():  # failed before its record was written: keep it findable
            atomic_write_json(trial.spec_file, {"spec": spec.to_json(), "hash": spec.hash})
        trial.mark_failed(f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc())
        return {"state": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                "seconds": time.perf_counter() - started}
