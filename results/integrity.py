"""Checking a finished trial before it is counted, and the store as a whole (`bench verify`).

A table averages whatever trials it is given, so every reader (`bench table`, `report`,
`classes`, `plot`, `status`) counts only trials that pass :func:`verify_done`: spec.json and
done.json readable, every metrics line whole, epochs 1..N with N what done.json certifies, and
metrics.jsonl and spec.json byte for byte what done.json hashed when the trial finished.  Stores
written before done.json carried hashes (noisybench 0.1.0) are checked by what their done.json
does record: the number of epochs and the Best and Last it summarised, recomputed from the lines.

A trial that fails is named in one line on stderr and left out of n -- never averaged.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from noisybench.core.layout import DONE, INCOMPLETE, SUBMISSION_DIR
from noisybench.core.spec import TrialSpec
from noisybench.results.lease import LEASE_FILE, LOCK_FILE, TrialLease
from noisybench.results.respelt import respelt_trial
from noisybench.results.store import DamagedTrial, TrialDir, TrialStore, file_sha256
from noisybench.results.summary import best_and_last

DAMAGED_DIR = ".damaged"  # where `bench verify --repair` (and `bench run`) move damaged trials
STALE_DIR = ".stale"  # where `bench run --rerun-stale` moves trials made by other code (bench/staleness.py)
ASIDE_NOTE = "moved-aside.txt"  # in each folder moved aside: one line saying why


@dataclass
class VerifiedTrial:
    trial: TrialDir
    record: dict  # spec.json
    done: dict
    metrics: list[dict]


def check_name(trial: TrialDir, record: dict) -> None:
    """DamagedTrial unless the directory is named for the spec its spec.json holds (method, noise,
    seed and hash).  A finished trial copied over another's name, or to an extra name, passes every
    other check -- done.json certifies the files, not where they lie -- and would be counted as the
    trial its name says, or twice."""
    try:
        expected = TrialSpec.from_json(record["spec"]).dirname
    except (TypeError, ValueError, KeyError, AttributeError):
        raise DamagedTrial(f"{trial.spec_file}: its \"spec\" record is not a trial spec") from None
    # The hash spec.json recorded names the directory too (a spec written by another version).
    recorded = f"{expected.rsplit('_', 1)[0]}_{record.get('hash')}"
    if trial.path.name in (expected, recorded):
        return
    if (trial.path.parent / expected).is_dir():
        raise DamagedTrial(f"{trial.path}: a duplicate of {expected} (its spec.json is that trial's, not the one "
                           "this directory's name says: a copied directory)")
    raise DamagedTrial(f"{trial.path}: misnamed, its spec.json is the trial {expected} (a renamed or copied "
                       "directory)")


def verify_done(trial: TrialDir) -> VerifiedTrial:
    """The finished trial with its files, or DamagedTrial saying in one line what is wrong."""
    record = trial.read_spec()
    check_name(trial, record)
    done = trial.read_done()
    metrics = trial.read_metrics_strict()
    epochs = [m["epoch"] for m in metrics]
    if epochs != list(range(1, len(epochs) + 1)):
        first_bad = next(i + 1 for i, e in enumerate(epochs) if e != i + 1)
        raise DamagedTrial(f"{trial.metrics_file}: line {first_bad} is epoch {epochs[first_bad - 1]}, expected "
                           f"{first_bad} (epochs repeated or missing)")
    certified = done.get("epochs")
    if certified != len(metrics):
        raise DamagedTrial(f"{trial.metrics_file}: {len(metrics)} epochs, but done.json certifies {certified}")
    if "metrics_sha256" in done:
        if file_sha256(trial.metrics_file) != done["metrics_sha256"]:
            raise DamagedTrial(f"{trial.metrics_file}: changed since the trial finished (sha256 differs from done.json)")
        if file_sha256(trial.spec_file) != done.get("spec_sha256"):
            raise DamagedTrial(f"{trial.spec_file}: changed since the trial finished (sha256 differs from done.json)")
    else:  # noisybench 0.1.0's done.json: its own summary must follow from the lines
        numbers = best_and_last(metrics)
        for key in ("best", "last"):
            if key in done and not math.isclose(numbers[key], float(done[key]), rel_tol=0, abs_tol=1e-12):
                raise DamagedTrial(f"{trial.metrics_file}: its {key} {numbers[key]:.6f} is not done.json's "
                                   f"{float(done[key]):.6f}")
    return VerifiedTrial(trial, record, done, metrics)


_warned: set[str] = set()


def warn(message: str) -> None:
    """One line on stderr, once per process (a command may read the store more than once)."""
    if message not in _warned:
        _warned.add(message)
        print(f"bench: warning: {message}", file=sys.stderr, flush=True)


def excluded_line(problem: str, root) -> str:
    return (f"{problem}; left out of every table (`bench verify --results {root} --repair` moves it aside "
            "so that the next `bench run` redoes it)")


def verified_done_trials(root, echo: Callable[[str], None] = warn) -> Iterator[VerifiedTrial]:
    """Every finished trial of the store that passes :func:`verify_done`; each one that does not,
    and each trial whose spec.json cannot be read, is named through ``echo`` in one line."""
    for trial in TrialStore(root).trials():
        try:
            if trial.state != DONE:
                if trial.spec_file.exists():
                    trial.read_spec()  # an unfinished trial is not counted, but a damaged record is said
                continue
            yield verify_done(trial)
        except DamagedTrial as err:
            echo(excluded_line(str(err), root))


@dataclass
class StoreReport:
    done: int = 0
    unfinished: int = 0
    damaged: list[tuple[TrialDir, str]] = None  # (trial, problem)
    moved: list[tuple[TrialDir, Path]] = None
    # Checkpoints of unfinished trials that `bench run` would refuse to load (they name code):
    # (trial, problem, removed by --repair).
    refused_checkpoints: list[tuple[TrialDir, str, bool]] = None
    # Sound trials whose name spells out a default that no longer names a trial (results/respelt.py).
    respelt: list = None

    def __post_init__(self):
        self.respelt = self.respelt or []
        self.damaged = self.damaged or []
        self.moved = self.moved or []
        self.refused_checkpoints = self.refused_checkpoints or []


def check_store(root, repair: bool = False) -> StoreReport:
    """Verify every trial directory; with ``repair`` move each damaged one (not held by a live
    process) into ``<root>/.damaged/`` so that the next run redoes it."""
    report = StoreReport()
    root = Path(root)
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not path.is_dir() or path.name in (SUBMISSION_DIR, DAMAGED_DIR, STALE_DIR):
            continue
        trial = TrialDir(path)
        problem = damage(trial)
        if problem is not None:
            report.damaged.append((trial, problem))
            moved = move_aside_if_damaged(trial, root, damage) if repair else None
            if moved is not None:
                report.moved.append((trial, moved[1]))
        elif trial.spec_file.exists():
            if (respelt := respelt_trial(trial)) is not None:
                report.respelt.append(respelt)
            if trial.state == DONE:
                report.done += 1
            else:
                report.unfinished += 1
                report.refused_checkpoints += refused_checkpoints(trial, repair)
    return report


def refused_checkpoints(trial: TrialDir, repair: bool) -> list[tuple[TrialDir, str, bool]]:
    """The checkpoints of an unfinished trial that name code (a forged file, or one a plugin wrote
    before checkpoints were read as data only), each read as data only -- nothing in them runs.
    With ``repair`` they are removed under the trial's lease: the trial then resumes from an
    earlier good state or restarts, with the numbers of an uninterrupted run either way."""
    from noisybench.results.checkpoints import checkpoint_problem  # torch: only where checkpoints are read

    found = [(path, problem) for path in trial.checkpoints() if (problem := checkpoint_problem(path))]
    if not found or not repair:
        return [(trial, problem, False) for _, problem in found]
    lease = TrialLease(trial.path)
    if not lease.acquire():  # a live process trains it and will not load them either
        return [(trial, problem, False) for _, problem in found]
    try:
        for path, _ in found:
            path.unlink(missing_ok=True)
    finally:
        lease.release()
    return [(trial, problem, True) for _, problem in found]


def stored_trial_record(trial: TrialDir) -> dict | None:
    """spec.json of a finished or unfinished trial, for the checks that compare it with today's code
    (bench/checks.py, bench/staleness.py); None for none, a failed trial (it is trained again anyway)
    or a damaged one -- unreadable, or another trial's record copied here --, which
    :func:`move_aside_if_damaged` moves aside instead."""
    if trial.state not in (DONE, INCOMPLETE) or not trial.spec_file.exists():
        return None
    try:
        record = trial.read_spec()
        check_name(trial, record)
    except DamagedTrial:
        return None
    return record


def damage(trial: TrialDir) -> str | None:
    """What is wrong with a trial directory (``check_store``'s checks), or None when it is sound."""
    try:
        if not trial.spec_file.exists():
            if trial.done_file.exists() or trial.metrics_file.exists():
                raise DamagedTrial(f"{trial.spec_file}: missing")
            return None
        if trial.state == DONE:
            verify_done(trial)
        else:
            check_name(trial, trial.read_spec())
            if trial.failed_file.exists():
                trial.read_failed()
    except DamagedTrial as err:
        return str(err)
    return None


def move_aside_if_damaged(trial: TrialDir, root, problem: Callable[[TrialDir], str | None],
                          aside: str = DAMAGED_DIR) -> tuple[str, Path] | None:
    """Under the trial's own lease, check ``problem(trial)`` again and, if it is still damaged (or
    stale: ``aside`` STALE_DIR), move its files aside (move_aside_contents) with a note of the
    problem: (problem, where they went).  None when it is sound by now or another process holds the
    trial -- then that writer decides, and no second writer ever trains in a directory whose lock
    was moved away under it."""
    lease = TrialLease(trial.path)
    if not lease.acquire():
        return None
    found = problem(trial)
    if not found:
        lease.release()
        return None
    try:
        target = move_aside_contents(trial, root, aside)
    except BaseException:
        lease.release()
        raise
    with contextlib.suppress(OSError):  # what `bench verify` lists; the move is what counts
        (target / ASIDE_NOTE).write_text(found.splitlines()[0] + "\n")
    lease.remove_directory()  # out of the store, as if never started; the next run trains it afresh
    return found, target


def move_aside_contents(trial: TrialDir, root, aside: str = DAMAGED_DIR) -> Path:
    """Move a damaged (or stale) trial's files (not its lease, which the caller holds) into
    <root>/<aside>/<name>.<time>.<pid>, leaving the directory empty for a fresh start."""
    target = Path(root) / aside / f"{trial.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}"
    target.mkdir(parents=True, exist_ok=True)
    for path in trial.path.iterdir():
        if path.name not in (LEASE_FILE, LOCK_FILE):
            shutil.move(str(path), str(target / path.name))
    return target



def moved_aside(root) -> list[tuple[str, Path, str]]:
    """(why: "damaged" or "stale", folder, its note or "") of every trial moved aside in the store,
    oldest name first: what `bench verify` lists (nothing moved aside is ever deleted)."""
    found = []
    for aside, kind in ((DAMAGED_DIR, "damaged"), (STALE_DIR, "stale")):
        folder = Path(root) / aside
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            note = path / ASIDE_NOTE
            found.append((kind, path, note.read_text().strip() if note.is_file() else ""))
    return found
