"""One trial, run or resumed into the store: the function every launcher runs.

A trial is trained only by the process that holds its lease (results/lease.py); the others are
told who holds it and leave the directory alone.  A finished trial is skipped only when it passes
results/integrity.py's checks; a damaged one is moved aside and trained again.
"""
from __future__ import annotations

import contextlib
import time
import traceback

import torch

from noisybench.bench.trainer.arithmetic import Arithmetic
from noisybench.bench.trainer.device import resolve_device
from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.records import spec_record
from noisybench.bench.trainer.resolve import ResolvedTrial
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.errors import BenchError
from noisybench.core.layout import DONE, INCOMPLETE
from noisybench.core.rules import recorded_rule_versions, rule_difference
from noisybench.core.spec import TrialSpec
from noisybench.results.integrity import move_aside_contents, verify_done
from noisybench.results.lease import LeaseLost, TrialLease
from noisybench.results.outcome import TrialOutcome
from noisybench.results.store import DamagedTrial, TrialDir, TrialStore, atomic_write_json
from noisybench.results.summary import best_and_last


@contextlib.contextmanager
def cpu_threads(count: int | None):
    """Run with ``count`` torch CPU threads (None: as they are), restoring them afterwards."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stored_record(trial: TrialDir) -> dict | None:
    try:
        return trial.read_spec()
    except DamagedTrial:
        return None


def run_trial(spec: ResolvedTrial | TrialSpec, results_root, *, device: str | torch.device | None = None, data_root=None,
              show_progress: bool = False, checkpoint_every: int = 1, feature_epochs: tuple[int, ...] = (),
              memory_format: str | None = None, fused: bool | None = None, autotune: bool | None = None) -> TrialOutcome:
    """Run (or resume) one resolved trial into the store and return how it ended (a bare TrialSpec,
    built by hand, is resolved once on the way in: bench/trainer/resolve.py).

    ``feature_epochs``: 1-based epochs after whose evaluation the training set's penultimate
    features are saved (features_e{E}.npz); they are diagnostics and not part of the spec.
    ``memory_format``, ``fused``, ``autotune``: run settings (bench/trainer/arithmetic.py; None:
    the device's default), recorded in spec.json.

    A trial held by another live process is left alone: the outcome's state is ``held`` and its
    ``holder`` says who.  A trial that raises is recorded as failed (failed.json with the
    traceback) and its outcome says so; the caller's sweep goes on.  KeyboardInterrupt leaves it
    incomplete.  A trial whose lease another process took while this one was suspended (every
    write checks the lease first) is left to it at once, untouched, in one line: its state is
    ``handed over``.  An OSError that cannot even be recorded (a read-only directory, a full
    disk) stops the sweep with one line naming the path.
    """
    trial = TrialStore(results_root).trial(spec)
    lease = TrialLease(trial.path)
    try:
        acquired = lease.acquire()
    except OSError as err:
        raise BenchError(f"{trial.path}: cannot take the trial ({err.strerror}); make the results directory "
                         "writable (and free space), or pass another --results") from None
    if not acquired:
        return TrialOutcome.held(lease.holder.describe())
    trial.fence = lease.check
    try:
        return _run_held_trial(spec, trial, results_root, device=device, data_root=data_root,
                               show_progress=show_progress, checkpoint_every=checkpoint_every,
                               feature_epochs=feature_epochs,
                               settings=dict(memory_format=memory_format, fused=fused, autotune=autotune))
    except LeaseLost as lost:
        print(f"{spec.label()}: {lost}", flush=True)
        return TrialOutcome.handed_over(lost.holder.describe() if lost.holder else "another process")
    finally:
        lease.release()


def _run_held_trial(spec: ResolvedTrial | TrialSpec, trial: TrialDir, results_root, *, device, data_root, show_progress,
                    checkpoint_every, feature_epochs, settings: dict) -> TrialOutcome:
    trial.remove_leftovers()  # temporary files of a writer killed mid-write
    if trial.state == DONE:
        try:
            verify_done(trial)
            return TrialOutcome.from_summary(trial.read_done(), skipped=True)
        except DamagedTrial as err:
            trial.check_fence()
            moved = move_aside_contents(trial, results_root)
            print(f"{spec.label()}: {err}; moved aside to {moved}, trained again", flush=True)
    started = time.perf_counter()
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    resumable = trial.state == INCOMPLETE and bool(trial.checkpoints())
    old = stored_record(trial) if resumable else None
    resumable = resumable and old is not None
    # A resumed CPU trial keeps the thread count it started with: sums split over another number
    # of threads round differently, and the resumed trial would match neither run.
    threads = old.get("cpu_threads") if old and torch_device.type == "cpu" else None
    was = (old.get("arithmetic") or {}).get("precision") if old else None
    now = Arithmetic.resolve(torch_device, spec.precision).precision
    if was is not None and was != now:
        # Precision None means the device's default: a trial started in bf16 on a GPU must not be
        # finished in fp32 on a CPU (or the other way) as if it were one run.  Nothing is written.
        raise BenchError(f"{trial.path} was started in {was} and would resume in {now} on {torch_device}; "
                         f"resume it on the same kind of device, or pass --precision {was}")
    if threads is not None and threads != torch.get_num_threads():
        print(f"{spec.label()}: resumed on {threads} CPU threads, the count it started with "
              f"(not this process's {torch.get_num_threads()})", flush=True)
    try:
        with cpu_threads(threads):
            setup = setup_trial(spec, torch_device, data_root, **settings)
            if resumable and (old.get("noise") or {}).get("labels_sha256") not in (None, setup.noisy.labels_sha256):
                raise BenchError(f"{trial.path} was started on other noisy labels than {spec.noise} gives now (a "
                                 "label file replaced?); move the trial out of the results directory to train it anew")
            record = spec_record(setup)
            # Epochs of one trial under two versions of a part's code would be one run of neither.
            if resumable and (changed := rule_difference(recorded_rule_versions(old), record["rule_versions"])):
                raise BenchError(f"{trial.path} was started under other code ({changed}); `bench run --rerun-stale` "
                                 "moves it aside and trains it anew")
            trial.start(record, fresh=not resumable)
            trainer = Trainer(setup, trial, show_progress=show_progress, checkpoint_every=checkpoint_every,
                              feature_epochs=feature_epochs)
            start_epoch = trainer.resume_point() if resumable else 0
            trainer.run(start_epoch)
            summary = {**best_and_last(trial.read_metrics()), "seconds": time.perf_counter() - started,
                       "resumed_from": start_epoch}
            if trainer.end_note:
                summary["end_note"] = trainer.end_note
            trial.mark_done(summary)
            return TrialOutcome.from_summary(summary)
    except LeaseLost:
        raise
    except Exception as exc:  # noqa: BLE001 -- a failing trial is recorded, the sweep goes on
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        # A write that failed because the new holder moved a file (checkpoint.pt) is not this
        # trial's failure: the lease check below raises LeaseLost instead of recording it.
        trial.check_fence()
        try:
            trial.path.mkdir(parents=True, exist_ok=True)
            if stored_record(trial) is None:  # failed before its record was written: keep it findable
                record = spec.record() if isinstance(spec, ResolvedTrial) else {"spec": spec.to_json(), "hash": spec.hash}
                atomic_write_json(trial.spec_file, record)
            trial.mark_failed(error, traceback.format_exc())
        except OSError as cannot_record:
            where = getattr(exc, "filename", None) or trial.path
            raise BenchError(f"{where}: {getattr(exc, 'strerror', None) or error}, and the failure cannot be "
                             f"recorded ({cannot_record.strerror}); free space or make {trial.path.parent} "
                             "writable, then rerun") from None
        return TrialOutcome.failed(error, time.perf_counter() - started)
