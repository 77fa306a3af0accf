"""Chaos tests of the trial store: real `bench` processes killed with SIGKILL, run side by side on
one store, and finished trials damaged on disk.

What the store guarantees, and what every scenario here checks on the store it leaves behind:

- every trial of the sweep ends done exactly once: done.json exists, metrics.jsonl holds exactly
  the epochs 1..8 (no repeat, no gap), and `bench verify --results DIR` exits 0;
- each trial's metrics are, line by line and timings aside, those of one uninterrupted reference
  run of the same sweep (the module's ``reference`` fixture), and `bench table` (markdown and csv)
  prints the reference's table;
- no ``.<name>.tmp<pid>`` file is left in any trial directory.

The sweep: digits (embedded), protocol quick, methods standard and coteaching, noise sym:0.4 and
pair:0.35, seeds 0 and 1, 8 epochs: 8 trials, 64 epochs.  Every process runs with
OMP_NUM_THREADS=1 and --device cpu (a sum split over another number of threads rounds
differently, so the reference uses the same count), and every kill time comes from a seeded
``random.Random``.  What each test does to the store:

1. ``test_concurrent_writers_train_each_trial_once``: 2, then 3 `bench run`s of the sweep started
   at once on one empty store; all exit 0, their leases are seen held at the same instant by
   different processes, and no trial was seen trained by two of them.
2. ``test_inline_sweep_resumes_after_random_sigkills``: 8 `bench run`s in turn on one store, each
   SIGKILLed at a seeded random moment after it took its first trial, spread uniformly over what
   the reference measured that run has left to do (a fresh process's warm-up, then the unfinished
   epochs of each trial); then one run to completion.
3. ``test_local_launcher_survives_a_sigkill[parent|controller|worker]``: `--launcher local
   --workers 2`, SIGKILL of (a) the bench process that submitted and follows the jobs, (b) one
   submitit controller (``python -m submitit.local._local``), (c) one worker (the controller's
   child), at a seeded random moment once both workers train; then at once, beside what survived,
   the same command again, to the end.  It must not resubmit a trial whose job (controller) is
   alive or whose lease a live process holds (an orphaned worker): it waits for them, and ends
   only when every trial is done.  Every process of both runs is SIGKILLed by process group when
   the test ends, whatever happened.
4. ``test_a_flipped_checkpoint_is_never_loaded``: an inline run SIGKILLed mid-trial with
   --checkpoint-every 1; 4 KiB in the middle of that trial's newest checkpoint are flipped, so the
   rerun must resume from previous-checkpoint.pt; that rerun is killed mid-trial too and every
   checkpoint of its unfinished trial is flipped (both, or the one a kill mid-save leaves), so the
   last run must restart that trial from scratch.
5. ``test_a_damaged_finished_trial_is_left_out_then_redone[truncated|garbage|no-spec]``: a copy of
   the reference store with one finished trial damaged (metrics.jsonl cut at 60% of its bytes, a
   garbage line appended to it, or spec.json deleted): `bench table` names it in one warning line
   and shows n = 1 for its cell, `bench verify` exits 1 naming it, and `bench run` of the sweep
   redoes exactly that trial (7 skipped).

6. ``test_a_writer_suspended_past_the_stale_limit_hands_its_trial_over``: the race of a results
   directory whose locks are node-local.  Run A is SIGSTOPped mid-trial; run B, a real second
   process as host "node-b" whose flock is a no-op and whose stale limit is 3 s, takes that trial
   over once A's heartbeat is stale; A is SIGCONTed while B trains it.  A must say in one line
   that it lost the lease to B and left the trial, count it handed over (not done, not failed),
   go on with the sweep, and exit 0 like B; each trial's numbers are reported by the one run that
   trained it, and the store is the uninterrupted one.
7. ``test_a_copied_trial_directory_is_named_and_moved_aside``: a finished trial's directory copied
   over another's name and to an extra name (done.json certifies the files, not where they lie):
   `bench table` names each copy in a warning line and leaves it out, `bench verify` calls both
   duplicates, `--repair` moves them aside, and the next `bench run` redoes the overwritten trial.

Two bugs these tests found, fixed, and kept as tests:

- ``test_status_names_a_finished_trial_without_its_spec``: `bench status` did not list a finished
  trial whose spec.json was deleted (table, verify and run named it).
- ``test_a_dead_but_unreaped_holder_does_not_hold_its_trial``: a lease holder SIGKILLed but not yet
  reaped by its parent (a zombie) counted as alive, so the trial was refused although the kernel
  had dropped its flock, and `bench run` waited for it for ever.

Routine checks of a store (`bench table`, `bench verify`, `bench status`) call the CLI's ``main``
in this process, which is the same code without the 2 s of a Python start; `bench table` is run as
a process where its stderr warning line is what is tested.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import epoch_metrics, wait_until

from noisybench.bench.cli import main
from noisybench.bench.sweep import SweepRequest, build_specs
from noisybench.core.spec import TrialSpec
from noisybench.results.integrity import DAMAGED_DIR
from noisybench.results.lease import TrialLease, live_holder, read_holder
from noisybench.results.store import TMP_MARK, TrialStore, read_checked_meta
from noisybench.slurm.queue import local_job_alive
from noisybench.slurm.submission import load_submissions

EPOCHS = 8
METHODS, NOISES, SEEDS = "standard,coteaching", "sym:0.4,pair:0.35", "2"
SWEEP = ["run", "--methods", METHODS, "--noise", NOISES, "--seeds", SEEDS, "--epochs", str(EPOCHS),
         "--device", "cpu"]
LOCAL = ["--launcher", "local", "--workers", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
_bench_script = Path(sys.executable).with_name("bench")
BENCH = [str(_bench_script)] if _bench_script.exists() else [sys.executable, "-m", "noisybench.bench.cli"]
PROCESS_TIMEOUT_S = 300  # a hung bench fails the test instead of hanging it


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------
def start(args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    """A `bench` process in its own session (its process group is its pid: killed whole at the end)."""
    with open(log, "w") as out:  # the child keeps its own copy
        return subprocess.Popen(BENCH + args, cwd=cwd, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = PROCESS_TIMEOUT_S) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"{proc.args} did not end within {timeout} s; its output:\n{tail(log)}") from None


def tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgrp: int
    state: str
    cmdline: bytes


def processes() -> dict[int, Proc]:
    """This machine's process table, from /proc (psutil is not installed here)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        table[int(entry.name)] = Proc(int(entry.name), int(fields[1]), int(fields[2]), fields[0], cmdline)
    return table


def group_alive(pgid: int) -> list[Proc]:
    """The processes of a process group that still run (zombies are dead, only not yet reaped)."""
    return [p for p in processes().values() if p.pgrp == pgid and p.state != "Z"]


def is_dead(pid: int) -> bool:
    """Gone, or a zombie (dead, its exit status not yet collected by its parent)."""
    proc = processes().get(pid)
    return proc is None or proc.state == "Z"


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process of ``proc``'s group (its pid: see start), reap ``proc``, and wait until
    none is left: submitit's controllers and workers outlive a killed parent otherwise."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)
    wait_until(lambda: not group_alive(proc.pid), 30, f"process group {proc.pid} to end", 0.05)


def run_to_the_end(args: list[str], log: Path, cwd: Path) -> None:
    """One bench run that must finish with exit status 0; nothing of it outlives the call."""
    proc = start(args, log, cwd)
    try:
        assert finish(proc, log) == 0, tail(log)
    finally:
        kill_group(proc)


def controllers_and_workers(pgid: int) -> tuple[list[int], list[int]]:
    """submitit's local controllers (``python -m submitit.local._local``) in a group, and their
    children, the workers that run the trials."""
    table = [p for p in processes().values() if p.pgrp == pgid and p.state != "Z"]
    controllers = sorted(p.pid for p in table if b"submitit.local._local" in p.cmdline)
    workers = sorted(p.pid for p in table if p.ppid in controllers)
    return controllers, workers


def sleep_unless_ended(proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


# --------------------------------------------------------------------------------------
# The CLI in this process, for the checks
# --------------------------------------------------------------------------------------
def bench_here(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------------------
# The reference and the checks against it
# --------------------------------------------------------------------------------------
@dataclass
class Reference:
    root: Path
    specs: list[TrialSpec]
    metrics: dict[str, list[dict]]  # dirname -> lines without "seconds"
    table: str
    csv: str
    wall_s: float  # the whole uninterrupted `bench run`
    train_s: float  # its trials' own seconds (done.json), summed: the part a kill can interrupt
    steady_s: dict[str, float]  # dirname -> a trial's seconds in a process that is warmed up
    warmup_s: float  # what the first trial of a process takes on top (imports, the dataset, first kernels)

    def spec(self, method: str, noise: str, seed: int) -> TrialSpec:
        (match,) = [s for s in self.specs if (s.method, s.noise, s.seed) == (method, noise, seed)]
        return match


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """One uninterrupted `bench run` of the sweep: what every scenario must end with."""
    root = tmp_path_factory.mktemp("reference") / "store"
    log = root.parent / "run.log"
    started = time.monotonic()
    run_to_the_end(SWEEP + ["--results", str(root)], log, root.parent)
    wall = time.monotonic() - started
    specs = build_specs(SweepRequest(methods=METHODS, noise=NOISES, seeds=SEEDS, epochs=EPOCHS))
    assert len(specs) == 8
    store = TrialStore(root)
    metrics = {s.dirname: epoch_metrics(root, s) for s in specs}
    assert all([m["epoch"] for m in lines] == list(range(1, EPOCHS + 1)) for lines in metrics.values())
    seconds = {s.dirname: float(store.trial(s).read_done()["seconds"]) for s in specs}
    first = specs[0]
    warmup = max(0.0, seconds[first.dirname] - min(seconds[s.dirname] for s in specs[1:] if s.method == first.method))
    steady = {**seconds, first.dirname: seconds[first.dirname] - warmup}
    code, table, err = bench_here("table", "--results", root)
    assert code == 0 and err == "", err
    code, csv, err = bench_here("table", "--results", root, "--format", "csv")
    assert code == 0 and err == "", err
    return Reference(root, specs, metrics, table, csv, wall, sum(seconds.values()), steady, warmup)


def first_difference(got: list[dict], want: list[dict]) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            keys = sorted(k for k in g.keys() | w.keys() if g.get(k) != w.get(k))
            return f"line {i + 1} differs in {keys[:6]}: {[(k, g.get(k), w.get(k)) for k in keys[:3]]}"
    return f"{len(got)} lines, the reference has {len(want)}"


def assert_matches_reference(root: Path, ref: Reference) -> None:
    """Every trial done once with the reference's metrics; verify, table and csv as the reference's."""
    store = TrialStore(root)
    for spec in ref.specs:
        trial = store.trial(spec)
        assert trial.done_file.exists(), f"{spec.label()}: not done ({sorted(p.name for p in trial.path.iterdir())})"
        raw = trial.metrics_file.read_text().splitlines()
        epochs = [json.loads(line)["epoch"] for line in raw]
        assert epochs == list(range(1, EPOCHS + 1)), f"{spec.label()}: epochs {epochs}"
        got = epoch_metrics(root, spec)
        assert got == ref.metrics[spec.dirname], f"{spec.label()}: {first_difference(got, ref.metrics[spec.dirname])}"
        leftovers = sorted(p.name for p in trial.path.iterdir() if TMP_MARK in p.name)
        assert not leftovers, f"{spec.label()}: temporary files left: {leftovers}"
    trial_dirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert trial_dirs == {s.dirname for s in ref.specs}
    code, out, err = bench_here("verify", "--results", root)
    assert code == 0, out + err
    assert "8 finished trials verified, 0 unfinished, 0 damaged" in out, out
    code, table, err = bench_here("table", "--results", root)
    assert (code, err) == (0, ""), err
    assert table == ref.table
    code, csv, err = bench_here("table", "--results", root, "--format", "csv")
    assert (code, err) == (0, ""), err
    assert csv == ref.csv


def epochs_left(root: Path, specs: list[TrialSpec]) -> int:
    store = TrialStore(root)
    left = 0
    for spec in specs:
        trial = store.trial(spec)
        if not trial.done_file.exists():
            left += EPOCHS - min(EPOCHS, len(trial.read_metrics()))
    return left


def expected_run_s(root: Path, ref: Reference) -> float:
    """How long a `bench run` on this store trains, once it took its first trial, as the reference
    measured it: the warm-up of a fresh process, and the epochs still to do of each unfinished trial."""
    store = TrialStore(root)
    left = 0.0
    for spec in ref.specs:
        trial = store.trial(spec)
        if not trial.done_file.exists():
            left += ref.steady_s[spec.dirname] * (EPOCHS - min(EPOCHS, len(trial.read_metrics()))) / EPOCHS
    return ref.warmup_s + left


def holds_a_lease(root: Path, specs: list[TrialSpec], pid: int) -> bool:
    return any((h := read_holder(root / s.dirname)) is not None and h.pid == pid for s in specs)


# --------------------------------------------------------------------------------------
# 1. Concurrent writers
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("writers", [2, 3])
def test_concurrent_writers_train_each_trial_once(reference, tmp_path, writers):
    root = tmp_path / "store"
    logs = [tmp_path / f"writer{i}.log" for i in range(writers)]
    procs = [start(SWEEP + ["--results", str(root)], log, tmp_path) for log in logs]
    trainers: dict[str, set[int]] = {s.dirname: set() for s in reference.specs}
    overlaps = 0  # polls that saw two processes each holding a trial that was not done yet
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while any(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "the writers did not end"
            holding = set()
            for spec in reference.specs:
                holder = read_holder(root / spec.dirname)
                # The lease first, then done.json: a process that takes the lease of a finished trial
                # only to skip it does so after done.json was written, and is not counted as training it.
                if holder is not None and not (root / spec.dirname / "done.json").exists():
                    trainers[spec.dirname].add(holder.pid)
                    holding.add(holder.pid)
            overlaps += len(holding) >= 2
            time.sleep(0.01)
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:
            kill_group(p)
    assert codes == [0] * writers, "\n\n".join(tail(log) for log in logs)
    pids = {p.pid for p in procs}
    twice = {name: seen for name, seen in trainers.items() if len(seen) > 1}
    assert not twice, f"trials seen trained by more than one process: {twice}"
    seen = set().union(*trainers.values())
    assert seen <= pids, f"leases held by {seen - pids}, none of the writers"
    assert len(seen) >= 2 and overlaps, f"the writers did not overlap (trainers {trainers}, {overlaps} polls)"
    store = TrialStore(root)
    assert [store.trial(s).read_done().get("resumed_from") for s in reference.specs] == [0] * 8
    assert_matches_reference(root, reference)
    shares = sorted(sum(p in t for t in trainers.values()) for p in pids)
    print(f"{writers} writers: trials trained per writer {shares}, {overlaps} polls saw two writers training")


# --------------------------------------------------------------------------------------
# 2. SIGKILL of an inline sweep at random moments
# --------------------------------------------------------------------------------------
KILLS = 8


def test_inline_sweep_resumes_after_random_sigkills(reference, tmp_path):
    rng = random.Random(20250602)
    root = tmp_path / "store"
    outcomes = []  # (delay after the run took its first trial, exit status, epochs left before, after)
    for k in range(KILLS):
        left = epochs_left(root, reference.specs)
        if left == 0:
            break
        # Spread over what the run has left to do (its warm-up included), as the reference measured it.
        delay = rng.random() * expected_run_s(root, reference)
        log = tmp_path / f"killed{k}.log"
        proc = start(SWEEP + ["--results", str(root)], log, tmp_path)
        try:
            wait_until(lambda p=proc: p.poll() is not None or holds_a_lease(root, reference.specs, p.pid),
                       PROCESS_TIMEOUT_S, "the run to take a trial", 0.005)
            sleep_unless_ended(proc, delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            code = finish(proc, log)
        finally:
            kill_group(proc)
        assert code in (0, -signal.SIGKILL), tail(log)
        outcomes.append((round(delay, 2), code, left, epochs_left(root, reference.specs)))
    log = tmp_path / "final.log"
    run_to_the_end(SWEEP + ["--results", str(root)], log, tmp_path)
    killed = sum(code == -signal.SIGKILL for _, code, _, _ in outcomes)
    assert killed >= KILLS // 2, f"most runs ended before their kill: {outcomes}"
    assert_matches_reference(root, reference)
    resumed = {s.label(): TrialStore(root).trial(s).read_done().get("resumed_from") for s in reference.specs}
    print(f"{killed} of {len(outcomes)} runs SIGKILLed (delay s, status, epochs left before, after): {outcomes}; "
          f"reference: {reference.wall_s:.1f} s in all, training {reference.train_s:.2f} s of which warm-up "
          f"{reference.warmup_s:.2f} s; "
          f"resumed_from per trial: {resumed}")


# --------------------------------------------------------------------------------------
# 3. The local launcher: SIGKILL of the parent, a controller or a worker
# --------------------------------------------------------------------------------------
def unfinished_trials_of_live_jobs(root: Path) -> set[str]:
    """Trials not done whose local job (its controller) is alive: a rerun must leave them to it."""
    live = set()
    for record in load_submissions(root):
        for task in record.get("tasks", []):
            if task.get("job_id") and local_job_alive(task["job_id"]):
                live |= {t["dir"] for t in task["trials"] if not (root / t["dir"] / "done.json").exists()}
    return live


def trials_held_by_live_processes(root: Path, specs: list[TrialSpec]) -> set[str]:
    return {s.dirname for s in specs
            if live_holder(root / s.dirname) is not None and not (root / s.dirname / "done.json").exists()}


def submitted_trials(records: list[dict]) -> set[str]:
    return {t["dir"] for r in records for task in r.get("tasks", []) if task.get("job_id") for t in task["trials"]}


@pytest.mark.parametrize("victim", ["parent", "controller", "worker"])
def test_local_launcher_survives_a_sigkill(reference, tmp_path, victim):
    rng = random.Random(f"local-{victim}")
    root = tmp_path / "store"
    args = SWEEP + LOCAL + ["--results", str(root)]
    first_log, rerun_log = tmp_path / "first.log", tmp_path / "rerun.log"
    first = start(args, first_log, tmp_path)
    rerun = None
    try:
        def both_workers_train() -> bool:
            if first.poll() is not None:
                return True
            _, workers = controllers_and_workers(first.pid)
            return len(workers) == 2 and epochs_left(root, reference.specs) < EPOCHS * len(reference.specs)

        wait_until(both_workers_train, PROCESS_TIMEOUT_S, "both local workers to train", 0.02)
        assert first.poll() is None, f"the sweep ended before the kill:\n{tail(first_log)}"
        # A seeded moment within the first 70% of what is left of a worker's share of the training.
        sleep_unless_ended(first, rng.uniform(0.05, 0.7) * (reference.train_s - reference.warmup_s) / 2)
        assert first.poll() is None, f"the sweep ended before the kill:\n{tail(first_log)}"
        controllers, workers = controllers_and_workers(first.pid)
        assert len(controllers) == 2 and len(workers) == 2, (controllers, workers)
        target = {"parent": first.pid, "controller": rng.choice(controllers), "worker": rng.choice(workers)}[victim]
        parent_of_target = processes()[target].ppid
        os.kill(target, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: on a loaded machine the target runs on for a moment.
        wait_until(lambda: is_dead(target), 30, f"pid {target} to die", 0.005)
        first_code = None
        if victim == "parent":
            first_code = finish(first, first_log)  # reaped; its controllers and workers go on
        elif victim == "worker":
            # Its controller sees it die and ends the job: wait for that before judging what is alive.
            wait_until(lambda: not local_job_alive(str(parent_of_target)), 30, "the dead worker's job to end", 0.02)
        # (A killed controller is at once a zombie of the parent, which local_job_alive counts as dead.)

        # The rerun starts at once, beside the first run's surviving workers (and, but for (a), its
        # parent, which follows what is left): it must leave every trial a live job or a live lease
        # holder (an orphaned worker) has to them, and end only once all are done.
        live_jobs, held = unfinished_trials_of_live_jobs(root), trials_held_by_live_processes(root, reference.specs)
        live = live_jobs | held
        records_before = len(load_submissions(root))
        rerun = start(args, rerun_log, tmp_path)
        assert finish(rerun, rerun_log) == 0, tail(rerun_log)
        out = rerun_log.read_text()
        again = submitted_trials(load_submissions(root)[records_before:])
        assert not again & live, f"resubmitted trials of live jobs or holders: {sorted(again & live)}\n{out}"
        # What the rerun found (one snapshot, seconds after `live`): done, queued or running, or submitted.
        found = re.search(r"^(\d+) of 8 trials already done", out, re.MULTILINE)
        if (int(found.group(1)) if found else 0) + len(again) < 8:
            assert "already queued or running" in out, out
        assert all(TrialStore(root).trial(s).done_file.exists() for s in reference.specs), out
        if first_code is None:  # the first run's parent: 1 where a trial of its own jobs did not finish
            first_code = finish(first, first_log)
            assert first_code in (0, 1), tail(first_log)
        # The rerun returned once every trial was done; the first run's workers end right after.
        wait_until(lambda: not group_alive(first.pid), 60, "the first run's workers to end", 0.1)
    finally:
        kill_group(first)
        if rerun is not None:
            kill_group(rerun)
    assert_matches_reference(root, reference)
    resumed = {s.label(): TrialStore(root).trial(s).read_done().get("resumed_from") for s in reference.specs}
    print(f"local, killed the {victim} (pid {target}): first run exit {first_code}; at the rerun {len(live_jobs)} "
          f"unfinished trials of live jobs and {len(held)} held by live workers; {len(again)} resubmitted; "
          f"resumed_from {resumed}")


# --------------------------------------------------------------------------------------
# 4. Flipped bytes in a checkpoint
# --------------------------------------------------------------------------------------
def flip_middle(path: Path, size: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    size = min(size, len(data) // 2)
    start_at = len(data) // 2 - size // 2
    for i in range(start_at, start_at + size):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def run_until(args: list[str], log: Path, cwd: Path, ready, delay: float) -> int:
    """Start `bench`, wait until ``ready()``, ``delay`` s more, then SIGKILL it; its exit status."""
    proc = start(args, log, cwd)
    try:
        wait_until(lambda: proc.poll() is not None or ready(), PROCESS_TIMEOUT_S, "the moment to kill", 0.003)
        sleep_unless_ended(proc, delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        return finish(proc, log)
    finally:
        kill_group(proc)


def test_a_flipped_checkpoint_is_never_loaded(reference, tmp_path):
    rng = random.Random(4096)
    root = tmp_path / "store"
    store = TrialStore(root)
    args = SWEEP + ["--checkpoint-every", "1", "--results", str(root)]
    specs = reference.specs

    def done(spec: TrialSpec) -> bool:
        return store.trial(spec).done_file.exists()

    def mid_trial(after: TrialSpec | None = None) -> bool:
        """Once ``after`` (else any trial) is done: an unfinished trial past its second checkpoint."""
        if not (done(after) if after else any(done(s) for s in specs)):
            return False
        return any(s != after and not done(s) and store.trial(s).previous_checkpoint_file.exists() for s in specs)

    # Run 1, killed mid-trial (one trial done, the next past its second epoch): flip its newest checkpoint.
    code = run_until(args, tmp_path / "run1.log", tmp_path, mid_trial, rng.uniform(0, 0.05))
    assert code == -signal.SIGKILL, tail(tmp_path / "run1.log")
    (x,) = [s for s in specs if not store.trial(s).done_file.exists() and store.trial(s).checkpoints()]
    newest = store.trial(x).checkpoints()[0]
    previous = store.trial(x).previous_checkpoint_file
    expect_x = (read_checked_meta(previous)["epoch"]
                if newest.name == "checkpoint.pt" and previous.exists() else 0)
    flip_middle(newest)

    # Run 2 resumes x from the checkpoint before the flipped one; killed mid-way through a later trial y,
    # whose two checkpoints are both flipped.
    code = run_until(args, tmp_path / "run2.log", tmp_path, lambda: mid_trial(after=x), rng.uniform(0, 0.05))
    assert code == -signal.SIGKILL, tail(tmp_path / "run2.log")
    out2 = (tmp_path / "run2.log").read_text()
    assert f"{x.label()}: {newest.name} is damaged or not this trial's; not loaded" in out2, out2
    assert store.trial(x).read_done()["resumed_from"] == expect_x, out2
    (y,) = [s for s in specs if not store.trial(s).done_file.exists() and store.trial(s).checkpoints()]
    flipped_y = store.trial(y).checkpoints()
    for path in flipped_y:
        flip_middle(path)

    log = tmp_path / "run3.log"
    proc = start(args, log, tmp_path)
    try:
        assert finish(proc, log) == 0, tail(log)
    finally:
        kill_group(proc)
    out3 = log.read_text()
    for path in flipped_y:
        assert f"{y.label()}: {path.name} is damaged or not this trial's; not loaded" in out3, out3
    assert store.trial(y).read_done()["resumed_from"] == 0, out3  # restarted from scratch
    assert_matches_reference(root, reference)
    print(f"flipped {newest.name} of {x.label()} (resumed from epoch {expect_x}), "
          f"{[p.name for p in flipped_y]} of {y.label()} (restarted)")


# --------------------------------------------------------------------------------------
# 5. A damaged finished trial
# --------------------------------------------------------------------------------------
def cut_metrics(trial) -> None:
    data = trial.metrics_file.read_bytes()
    trial.metrics_file.write_bytes(data[:int(len(data) * 0.6)])


def append_garbage(trial) -> None:
    with open(trial.metrics_file, "a") as handle:
        handle.write("#!garbage line written by test_chaos\n")


DAMAGE = {
    "truncated": (("coteaching", "pair:0.35", 1), cut_metrics),
    "garbage": (("standard", "sym:0.4", 0), append_garbage),
    "no-spec": (("coteaching", "sym:0.4", 0), lambda trial: trial.spec_file.unlink()),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_finished_trial_is_left_out_then_redone(reference, tmp_path, kind):
    (method, noise, seed), damage = DAMAGE[kind]
    root = tmp_path / "store"
    shutil.copytree(reference.root, root)
    victim = reference.spec(method, noise, seed)
    damage(TrialStore(root).trial(victim))

    # bench table: one warning line naming the trial; its cell from the other seed alone (n = 1).
    table = subprocess.run(BENCH + ["table", "--results", str(root)], cwd=tmp_path, env=ENV, capture_output=True,
                           text=True, timeout=PROCESS_TIMEOUT_S, check=False)
    assert table.returncode == 0, table.stderr
    warning = table.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith("bench: warning: "), table.stderr
    assert victim.dirname in warning[0] and "left out of every table" in warning[0], warning[0]
    other = reference.metrics[reference.spec(method, noise, 1 - seed).dirname]
    accs = [100 * m["test_acc"] for m in other]
    best, last = max(accs), sum(accs[-10:]) / len(accs[-10:])
    assert f"{best:.2f} (n=1)" in table.stdout and f"{last:.2f} (n=1)" in table.stdout, table.stdout
    assert table.stdout.count("(n=1)") == 2, table.stdout  # only that cell's Best and Last
    code, csv, _ = bench_here("table", "--results", root, "--format", "csv")
    assert code == 0
    rows = {tuple(line.split(",")[2:4]): line.split(",") for line in csv.splitlines()[1:]}
    ref_rows = {tuple(line.split(",")[2:4]): line for line in reference.csv.splitlines()[1:]}
    row = rows[(noise, method)]
    assert row[4] == "1" and abs(float(row[5]) - best) < 1e-4 and abs(float(row[7]) - last) < 1e-4, row
    assert row[6] == "", row  # no std of one seed
    assert all(",".join(rows[key]) == line for key, line in ref_rows.items() if key != (noise, method)), csv

    # bench verify: exit 1, naming it; bench status counts it as damaged (not without its spec.json:
    # test_status_names_a_finished_trial_without_its_spec).
    code, out, _ = bench_here("verify", "--results", root)
    assert code == 1, out
    assert f"damaged  {victim.dirname}:" in out and "7 finished trials verified" in out, out
    if kind != "no-spec":
        code, out, _ = bench_here("status", "--results", root)
        assert code == 0 and "8 trials: done 7" in out and "damaged 1" in out and victim.label() in out, out

    # bench run of the sweep: that trial moved aside and trained again, the 7 others skipped.
    log = tmp_path / "rerun.log"
    run_to_the_end(SWEEP + ["--results", str(root)], log, tmp_path)
    out = log.read_text()
    assert "7 of 8 trials already done" in out, out
    assert [line for line in out.splitlines() if line.startswith("[")] == [
        line for line in out.splitlines() if line.startswith("[1/1] ")], out
    assert "[1/1] " in out and f"{victim.method:<12} {victim.noise:<10} seed {victim.seed}" in out, out
    moved = sorted(p.name for p in (root / DAMAGED_DIR).iterdir())
    assert len(moved) == 1 and moved[0].startswith(victim.dirname + "."), moved
    assert_matches_reference(root, reference)


def test_status_names_a_finished_trial_without_its_spec(reference, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(reference.root, root)
    victim = reference.spec(*DAMAGE["no-spec"][0])
    DAMAGE["no-spec"][1](TrialStore(root).trial(victim))
    code, out, _ = bench_here("status", "--results", root)
    assert code == 0 and "8 trials: done 7" in out and "damaged 1" in out and victim.dirname in out, out


# --------------------------------------------------------------------------------------
# 6. A dead holder that is not yet reaped
# --------------------------------------------------------------------------------------
def test_a_dead_but_unreaped_holder_does_not_hold_its_trial(tmp_path):
    trial_dir = tmp_path / "trial"
    code = ("import sys, time\nfrom noisybench.results.lease import TrialLease\n"
            "assert TrialLease(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(trial_dir)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGKILL)
        # Not reaped (no wait() yet): the kernel has closed its files, so its flock is gone.
        wait_until(lambda: processes().get(holder.pid, Proc(0, 0, 0, "Z", b"")).state == "Z", 10,
                   "the killed holder to be a zombie", 0.01)
        # The holder is dead at once; the kernel drops its flock a moment later (the last close
        # of a file of an exiting process is deferred), so the trial is taken within a second.
        from noisybench.results.lease import live_holder

        assert live_holder(trial_dir) is None
        lease = TrialLease(trial_dir)
        try:
            wait_until(lease.acquire, 5, "the zombie's lock to be dropped", 0.05)
        finally:
            lease.release()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# --------------------------------------------------------------------------------------
# 7. A writer suspended past the stale limit, its trial taken over by another host
# --------------------------------------------------------------------------------------
# Where locks are node-local (Lustre with localflock, NFS without a lock daemon), a second host's
# flock succeeds beside ours, and only lease.json's heartbeat tells it that the trial is held.
# Both are real `bench run`s, through a wrapper that sets what differs between them:
#   A (this host): a heartbeat every HEARTBEAT_S, so that B respects its leases while it runs;
#   B ("node-b"): its flock a no-op (its locks do not reach A's) and a stale limit of STALE_S.
# A is SIGSTOPped mid-trial, B takes that trial over once A's heartbeat is stale, and A is
# SIGCONTed while B trains it.
HEARTBEAT_S, STALE_S = 0.2, 3.0
AS_HOST = """
import fcntl, socket, sys
import noisybench.results.lease as lease
host, heartbeat, stale = sys.argv[1:4]
if host != "-":
    socket.gethostname = lambda: host
    fcntl.flock = lambda *args, **kwargs: None  # this host's locks do not reach the other's
lease.HEARTBEAT_S, lease.STALE_AFTER_S = float(heartbeat), float(stale)
from noisybench.bench.cli import main
sys.exit(main(sys.argv[4:]))
"""


def start_as_host(host: str, args: list[str], log: Path, cwd: Path, stale_s: float) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-c", AS_HOST, host, str(HEARTBEAT_S), str(stale_s), *args],
                                cwd=cwd, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def epochs_written(trial_dir: Path) -> int:
    try:
        return len((trial_dir / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def test_a_writer_suspended_past_the_stale_limit_hands_its_trial_over(reference, tmp_path):
    root = tmp_path / "store"
    args = SWEEP + ["--results", str(root)]
    first = reference.specs[0]  # the trial A takes first
    victim = root / first.dirname
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start_as_host("-", args, log_a, tmp_path, stale_s=lease_module_stale())
    b = None
    try:
        wait_until(lambda: a.poll() is not None or epochs_written(victim) >= 3, PROCESS_TIMEOUT_S,
                   "A to train 3 epochs", 0.005)
        assert a.poll() is None, tail(log_a)
        os.kill(a.pid, signal.SIGSTOP)
        wait_until(lambda: processes()[a.pid].state == "T", 10, "A to stop", 0.005)
        frozen_at = epochs_written(victim)
        # B starts once A's heartbeat is stale to it, so that it takes A's trial first.
        wait_until(lambda: time.time() - read_holder(victim).heartbeat > STALE_S + 0.2, 30, "A's lease to go stale")
        b = start_as_host("node-b", args, log_b, tmp_path, stale_s=STALE_S)
        wait_until(lambda: b.poll() is not None or ((h := read_holder(victim)) is not None and h.pid == b.pid
                                                    and epochs_written(victim) > frozen_at),
                   PROCESS_TIMEOUT_S, "B to take A's trial over and train an epoch", 0.002)
        assert b.poll() is None and not (victim / "done.json").exists(), tail(log_b)
        os.kill(a.pid, signal.SIGCONT)  # A wakes while B trains its trial
        assert finish(b, log_b) == 0, tail(log_b)
        assert finish(a, log_a) == 0, tail(log_a)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(a.pid, signal.SIGCONT)
        kill_group(a)
        if b is not None:
            kill_group(b)
    out_a, out_b = log_a.read_text(), log_b.read_text()
    lost = [line for line in out_a.splitlines() if "lost the lease" in line]
    assert lost == [f"{first.label()}: lost the lease on {first.dirname} to pid {b.pid} on node-b while suspended; "
                    "left to it"], out_a
    # Neither run claims a trial it did not finish: each trial has one run's progress line with its
    # numbers, and A counts the one it lost as handed over.
    head = f"{first.method:<12} {first.noise:<10} seed {first.seed}"
    assert re.search(rf"\] {re.escape(head)}: handed over to pid {b.pid} on node-b, which finished it", out_a), out_a
    assert "1 handed over)" in out_a and "0 failed" in out_a, out_a
    # B resumed from A's last checkpoint (the one before, if A was frozen while saving the newest).
    resumed = re.search(rf"\] {re.escape(head)}: best .* resumed at epoch (\d+)", out_b)
    assert resumed and 1 <= int(resumed.group(1)) <= frozen_at, out_b
    trained = {}
    for name, out in (("A", out_a), ("B", out_b)):
        for spec in reference.specs:
            label = f"{spec.method:<12} {spec.noise:<10} seed {spec.seed}: best"
            if label in out:
                trained.setdefault(spec.dirname, []).append(name)
    assert sorted(trained) == sorted(s.dirname for s in reference.specs), trained
    assert all(len(runs) == 1 for runs in trained.values()), trained
    assert_matches_reference(root, reference)
    print(f"A frozen after {frozen_at} epochs of {first.label()}; B resumed it at epoch {resumed.group(1)}; trials trained by A "
          f"{sum(r == ['A'] for r in trained.values())}, by B {sum(r == ['B'] for r in trained.values())}")


# --------------------------------------------------------------------------------------
# 8. A finished trial's directory copied over another's name, and to an extra name
# --------------------------------------------------------------------------------------
def test_a_copied_trial_directory_is_named_and_moved_aside(reference, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(reference.root, root)
    source, victim = reference.spec("standard", "sym:0.4", 0), reference.spec("coteaching", "pair:0.35", 1)
    shutil.rmtree(root / victim.dirname)
    shutil.copytree(root / source.dirname, root / victim.dirname)
    shutil.copytree(root / source.dirname, root / f"{source.dirname}-copy")

    # bench table: one warning line per copy, naming it; the victim's cell from its other seed.
    table = subprocess.run(BENCH + ["table", "--results", str(root)], cwd=tmp_path, env=ENV, capture_output=True,
                           text=True, timeout=PROCESS_TIMEOUT_S, check=False)
    assert table.returncode == 0, table.stderr
    warnings = table.stderr.splitlines()
    assert len(warnings) == 2 and all(f"a duplicate of {source.dirname}" in w for w in warnings), table.stderr
    assert "their specs differ" not in table.stderr and table.stdout.count("(n=1)") == 2, table.stdout

    code, out, _ = bench_here("verify", "--results", root)
    assert code == 1 and out.count(f"a duplicate of {source.dirname}") == 2, out
    assert f"damaged  {victim.dirname}: " in out and "7 finished trials verified, 0 unfinished, 2 damaged" in out, out
    code, out, _ = bench_here("verify", "--results", root, "--repair")
    assert code == 0 and out.count("moved    ") == 2, out

    # bench run of the sweep: the victim (moved aside) is trained again, the 7 others skipped.
    log = tmp_path / "rerun.log"
    run_to_the_end(SWEEP + ["--results", str(root)], log, tmp_path)
    assert "7 of 8 trials already done" in log.read_text(), tail(log)
    assert_matches_reference(root, reference)


def lease_module_stale() -> float:
    """A's own stale limit: the default (A judges B's leases as any host would)."""
    from noisybench.results.lease import STALE_AFTER_S

    return STALE_AFTER_S
