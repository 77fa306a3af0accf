"""The store's guarantees, piece by piece: the lease (one writer per trial), checksummed
checkpoints, certified done.json, readers that never count a damaged trial, clean failures, and
the identity checks on resume.  tests/test_chaos.py kills whole sweeps; these tests build each
situation by hand."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import finish_trial

from noisybench.bench.cli import main
from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec
from noisybench.results import lease as lease_module
from noisybench.results.aggregate import load_trials
from noisybench.results.integrity import check_store, verify_done
from noisybench.results.lease import LEASE_FILE, TrialLease, live_holder, read_holder
from noisybench.results.outcome import TrialOutcome
from noisybench.results.store import DamagedTrial, TrialDir, TrialStore, read_checked, write_checked

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def spec(seed: int = 0, epochs: int = 3, noise: str = "sym:0.4") -> TrialSpec:
    return TrialSpec(dataset="digits", method="standard", noise=noise, seed=seed, protocol="quick", epochs=epochs)


def fake_trial(root: Path, s: TrialSpec, accs=(0.5, 0.7, 0.6)) -> TrialDir:
    trial = TrialStore(root).trial(s)
    trial.path.mkdir(parents=True)
    trial.spec_file.write_text(json.dumps({"spec": s.to_json(), "hash": s.hash}))
    trial.metrics_file.write_text("".join(json.dumps({"epoch": e, "test_acc": a}) + "\n" for e, a in enumerate(accs, 1)))
    finish_trial(trial.path)
    return trial


# --------------------------------------------------------------------------------------
# The lease
# --------------------------------------------------------------------------------------
def test_a_second_lease_on_a_held_trial_is_refused_and_names_the_holder(tmp_path):
    first, second = TrialLease(tmp_path / "t"), TrialLease(tmp_path / "t")
    assert first.acquire()
    assert not second.acquire()
    assert second.holder.pid == os.getpid() and second.holder.host == socket.gethostname()
    first.release()
    assert not (tmp_path / "t" / LEASE_FILE).exists()
    assert second.acquire()
    second.release()


def test_another_process_holding_the_lock_keeps_the_trial(tmp_path):
    """A live process in another interpreter holds the flock: ours is refused; once it dies the
    kernel drops the lock and the trial can be taken at once (no waiting for a heartbeat)."""
    code = ("import sys, time; sys.path[:0] = [];"
            "from noisybench.results.lease import TrialLease; l = TrialLease(sys.argv[1]); "
            "assert l.acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "t")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = TrialLease(tmp_path / "t")
        assert not mine.acquire() and mine.holder.pid == holder.pid
        assert live_holder(tmp_path / "t").pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert live_holder(tmp_path / "t") is None  # its pid is gone: dead at once on this host
    assert mine.acquire()
    mine.release()


def write_lease(trial_dir: Path, **fields) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "start_time": None, "job_id": None,
              "heartbeat": time.time(), "token": "someone-else", **fields}
    (trial_dir / LEASE_FILE).write_text(json.dumps(record))


def test_a_lease_of_another_host_is_respected_until_its_heartbeat_is_stale(tmp_path):
    """Where locks are not shared (another host on NFS), lease.json's heartbeat decides."""
    write_lease(tmp_path / "t", host="node-elsewhere", pid=4242)
    mine = TrialLease(tmp_path / "t")
    assert not mine.acquire() and mine.holder.describe() == "pid 4242 on node-elsewhere"
    write_lease(tmp_path / "t", host="node-elsewhere", pid=4242,
                heartbeat=time.time() - lease_module.STALE_AFTER_S - 1)
    assert mine.acquire()  # stale: taken over
    assert read_holder(tmp_path / "t").token == mine.me.token
    mine.release()


def test_a_dead_or_reused_pid_on_this_host_does_not_hold_the_trial(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lease(tmp_path / "a", pid=dead.pid)
    write_lease(tmp_path / "b", pid=os.getpid(), start_time="not-this-process")  # the pid was reused
    for name in ("a", "b"):
        assert live_holder(tmp_path / name) is None
        lease = TrialLease(tmp_path / name)
        assert lease.acquire()
        lease.release()


def test_the_heartbeat_is_refreshed_while_held(tmp_path):
    lease = TrialLease(tmp_path / "t", heartbeat_s=0.05)
    assert lease.acquire()
    first = read_holder(tmp_path / "t").heartbeat
    time.sleep(0.3)
    assert read_holder(tmp_path / "t").heartbeat > first
    lease.release()


def test_run_trial_leaves_a_held_trial_alone(tmp_path):
    from noisybench.bench.trainer.trial import run_trial

    s = spec()
    lease = TrialLease(TrialStore(tmp_path).trial(s).path)
    assert lease.acquire()
    try:
        # The same process cannot take it twice either (the flock is per open file).
        summary = run_trial(s, tmp_path, device="cpu")
        assert summary.state == "held" and str(os.getpid()) in summary.holder
        assert not TrialStore(tmp_path).trial(s).metrics_file.exists()
    finally:
        lease.release()
    assert run_trial(s, tmp_path, device="cpu").epochs == 3


# --------------------------------------------------------------------------------------
# Checked files and certified trials
# --------------------------------------------------------------------------------------
def test_a_checked_file_reads_back_and_a_flipped_byte_is_caught(tmp_path):
    path = tmp_path / "c.pt"
    payload = bytes(range(256)) * 64
    write_checked(path, payload, {"epoch": 7})
    assert read_checked(path) == payload
    data = bytearray(path.read_bytes())
    data[-5000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert read_checked(path) is None
    path.write_bytes(payload)  # an unchecked (older) checkpoint cannot be verified: not ours
    assert read_checked(path) is None


@pytest.mark.parametrize("damage, words", [
    ("cut", "not JSON|certifies"),
    ("garbage", "line 4 is not JSON"),
    ("repeat", "epochs repeated or missing"),
    ("edited", "changed since the trial finished"),
    ("spec_edited", "spec.json: changed since"),
    ("spec_deleted", "spec.json"),
    ("done_garbage", "done.json: not valid JSON"),
])
def test_a_damaged_finished_trial_is_named_and_never_counted(tmp_path, capsys, damage, words):
    good = fake_trial(tmp_path, spec(0))
    bad = fake_trial(tmp_path, spec(1))
    text = bad.metrics_file.read_text()
    if damage == "cut":
        bad.metrics_file.write_text(text[: int(len(text) * 0.6)])
    elif damage == "garbage":
        bad.metrics_file.write_text(text + "{not json\n")
    elif damage == "repeat":
        bad.metrics_file.write_text(text + text.splitlines(keepends=True)[-1])
    elif damage == "edited":
        bad.metrics_file.write_text(text.replace("0.7", "0.9"))
    elif damage == "spec_edited":
        record = json.loads(bad.spec_file.read_text())
        bad.spec_file.write_text(json.dumps({**record, "note": "edited"}))
    elif damage == "spec_deleted":
        bad.spec_file.unlink()
    elif damage == "done_garbage":
        bad.done_file.write_text("{")
    verify_done(good)
    with pytest.raises(DamagedTrial, match=words):
        verify_done(bad)
    trials = load_trials(tmp_path)
    assert list(trials["path"]) == [str(good.path)]
    assert main(["table", "--results", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("bench: warning:")]
    assert len(warnings) == 1 and bad.path.name in warnings[0] and "left out" in warnings[0]
    assert "n = 1" in out

    assert main(["verify", "--results", str(tmp_path)]) == 1
    assert bad.path.name in capsys.readouterr().out
    assert main(["verify", "--results", str(tmp_path), "--repair"]) == 0
    assert not bad.path.exists() and any((tmp_path / ".damaged").iterdir())
    assert main(["verify", "--results", str(tmp_path)]) == 0


def test_a_store_written_by_0_1_0_is_verified_by_its_own_summary(tmp_path):
    """Old done.json files hold no hashes, but their epochs, best and last follow from the lines."""
    import shutil

    old = Path(__file__).parent / "fixtures" / "store_v0_1_0"
    shutil.copytree(old, tmp_path / "runs")
    report = check_store(tmp_path / "runs")
    assert report.done == 8 and not report.damaged
    victim = sorted((tmp_path / "runs").iterdir())[0] / "metrics.jsonl"
    lines = victim.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].replace('"test_acc": 0.', '"test_acc": 0.0')  # one accuracy changed
    victim.write_text("".join(lines))
    report = check_store(tmp_path / "runs")
    assert [t.path.name for t, _ in report.damaged] == [victim.parent.name]


def test_an_unreadable_spec_or_failed_record_names_its_trial_and_the_rest_reads(tmp_path, capsys):
    fake_trial(tmp_path, spec(0))
    broken = TrialStore(tmp_path).trial(spec(1))
    broken.path.mkdir()
    broken.spec_file.write_text('{"spec": {"dataset": "dig')  # half-written
    failed = TrialStore(tmp_path).trial(spec(2))
    failed.path.mkdir()
    failed.spec_file.write_text(json.dumps({"spec": spec(2).to_json(), "hash": spec(2).hash}))
    failed.failed_file.write_text("garbage")
    for command in (["table"], ["status"], ["report", "--out", str(tmp_path / "report" / "report.md")]):
        assert main([*command, "--results", str(tmp_path)]) == 0, command
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "JSONDecodeError" not in err
    assert "failed.json unreadable" in (tmp_path / "report" / "report.md").read_text()


# --------------------------------------------------------------------------------------
# Clean failures
# --------------------------------------------------------------------------------------
def test_leftover_temporary_files_are_removed_when_the_trial_is_next_taken(tmp_path):
    from noisybench.bench.trainer.trial import run_trial

    trial = TrialStore(tmp_path).trial(spec())
    trial.path.mkdir(parents=True)
    leftover = trial.path / ".checkpoint.pt.tmp99999"
    leftover.write_bytes(b"x" * 1000)
    run_trial(spec(), tmp_path, device="cpu")
    assert not leftover.exists() and trial.state == "done"


def test_a_failed_write_removes_its_temporary_file(tmp_path, monkeypatch):
    from noisybench.results import store

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full_disk)
    with pytest.raises(OSError):
        store.atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_results_directory_is_one_line(tmp_path, capsys, monkeypatch):
    """EACCES where the trial's first file is created (simulated: root, which runs CI, ignores
    directory permissions) stops the sweep with one line naming the path."""
    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith("lease.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(lease_module.os, "open", read_only)
    code = main(["run", "--epochs", "1", "--results", str(tmp_path / "runs"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Permission denied" in err and "runs/digits_standard" in err


def test_an_oserror_in_a_trial_is_recorded_as_its_failure(tmp_path, monkeypatch):
    from noisybench.bench.trainer import trial as trial_module
    from noisybench.bench.trainer.loop import Trainer

    def disk_full(self, start_epoch=0):
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(Trainer, "run", disk_full)
    summary = trial_module.run_trial(spec(), tmp_path, device="cpu")
    assert summary.state == "failed" and "No space left" in summary.error
    assert TrialStore(tmp_path).trial(spec()).state == "failed"


# --------------------------------------------------------------------------------------
# A directory not named for its spec
# --------------------------------------------------------------------------------------
def test_verify_names_a_copied_or_renamed_trial_directory_and_repair_moves_it_aside(tmp_path, capsys):
    import shutil

    first, second, third = (fake_trial(tmp_path, spec(seed=k)) for k in range(3))
    shutil.rmtree(second.path)
    shutil.copytree(first.path, second.path)  # copied over another's name
    shutil.copytree(first.path, tmp_path / (first.path.name + "-copy"))  # and to an extra name
    third.path.rename(tmp_path / third.path.name.replace("_s2_", "_s9_"))  # renamed, the original gone
    assert main(["verify", "--results", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"damaged  {second.path.name}: {second.path}: a duplicate of {first.path.name} (its spec.json is" in out
    assert f"damaged  {first.path.name}-copy: " in out and out.count("a duplicate of") == 2, out
    assert f": misnamed, its spec.json is the trial {third.path.name} (a renamed or copied directory)" in out, out
    assert "1 finished trials verified, 0 unfinished, 3 damaged" in out, out

    warnings = []
    trials = load_trials(tmp_path, echo=warnings.append)
    assert list(trials["path"]) == [str(first.path)] and len(warnings) == 3, warnings
    assert all("left out of every table" in w for w in warnings)

    assert main(["verify", "--results", str(tmp_path), "--repair"]) == 0
    assert capsys.readouterr().out.count("moved    ") == 3
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [first.path.name]
    assert main(["verify", "--results", str(tmp_path)]) == 0


def test_a_run_redoes_a_trial_whose_directory_holds_a_copy_of_another(tmp_path, capsys):
    import shutil

    sweep = ["run", "--seeds", "2", "--epochs", "2", "--results", str(tmp_path), "--device", "cpu"]
    assert main(sweep) == 0
    first, second = (TrialStore(tmp_path).trial(spec(seed=k, epochs=2)) for k in range(2))
    want = second.metrics_file.read_text()
    shutil.rmtree(second.path)
    shutil.copytree(first.path, second.path)
    capsys.readouterr()
    assert main(sweep) == 0
    out = capsys.readouterr().out
    assert f"a duplicate of {first.path.name}" in out and "1 of 2 trials already done" in out, out
    assert verify_done(second).record["spec"]["seed"] == 1
    assert [json.loads(line)["test_acc"] for line in second.metrics_file.read_text().splitlines()] == [
        json.loads(line)["test_acc"] for line in want.splitlines()]


def test_two_trials_in_one_cell_and_seed_are_refused_naming_what_differs(tmp_path):
    from noisybench.results.aggregate import summarize

    # Initial weights of one file name in two folders, recorded without their digest: one label.
    for folder in ("a", "b"):
        fake_trial(tmp_path, TrialSpec(**{**spec().__dict__, "pretrained": f"/{folder}/w.pth"}))
    with pytest.raises(BenchError, match=r"their specs differ in pretrained \('/a/w.pth' vs '/b/w.pth'\), which "):
        summarize(load_trials(tmp_path))


# --------------------------------------------------------------------------------------
# Fencing: a holder suspended past the stale limit, whose trial another host took over
# --------------------------------------------------------------------------------------
def take_over(trial_dir: Path, host: str = "node-b", pid: int = 4242) -> str:
    """What a process on another host, whose locks do not reach ours, does on finding our lease
    stale: write its own lease.json over ours.  Returns its token."""
    write_lease(trial_dir, host=host, pid=pid)
    return read_holder(trial_dir).token


def test_a_lost_lease_is_found_by_the_next_check_and_the_heartbeat_leaves_it(tmp_path):
    lease = TrialLease(tmp_path / "t", heartbeat_s=0.01)
    assert lease.acquire()
    lease.check()  # ours: passes
    token = take_over(tmp_path / "t")
    with pytest.raises(lease_module.LeaseLost, match="lost the lease on t to pid 4242 on node-b while suspended"):
        lease.check()
    time.sleep(0.1)  # the heartbeat (every 10 ms) must not write ours back over the new holder's
    assert read_holder(tmp_path / "t").token == token
    lease.release()
    assert read_holder(tmp_path / "t").token == token  # release leaves the new holder's lease.json


def test_a_woken_heartbeat_checks_before_it_refreshes(tmp_path):
    lease = TrialLease(tmp_path / "t", heartbeat_s=0.05)
    assert lease.acquire()
    token = take_over(tmp_path / "t")
    time.sleep(0.3)  # several beats
    assert read_holder(tmp_path / "t").token == token and lease.lost is not None
    lease.release()


def test_a_lease_the_taker_already_let_go_of_is_lost_too(tmp_path):
    lease = TrialLease(tmp_path / "t")
    assert lease.acquire()
    (tmp_path / "t" / LEASE_FILE).unlink()  # the taker finished and released it
    with pytest.raises(lease_module.LeaseLost, match="another process"):
        lease.check()
    lease.release()


def suspended_and_taken_over(tmp_path, monkeypatch, after_epochs: int, then=None):
    """Run a trial whose lease another host takes after ``after_epochs`` epochs (while, as far as
    the trial knows, it was suspended); ``then(trial)`` runs right after the takeover."""
    from noisybench.bench.trainer import trial as trial_module
    from noisybench.bench.trainer.loop import Trainer

    real = Trainer.train_epoch
    trial = TrialStore(tmp_path).trial(spec(epochs=5))

    def train_epoch(self, epoch, max_steps=None):
        out = real(self, epoch, max_steps)
        if epoch == after_epochs:
            take_over(trial.path)
            if then is not None:
                then(trial)
        return out

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    return trial, trial_module.run_trial(spec(epochs=5), tmp_path, device="cpu")


def test_a_trial_that_lost_its_lease_stops_without_touching_its_files(tmp_path, monkeypatch, capsys):
    before = {}

    def snapshot(trial):
        before.update({p.name: p.read_bytes() for p in trial.path.iterdir() if p.is_file()})

    trial, summary = suspended_and_taken_over(tmp_path, monkeypatch, 2, snapshot)
    assert summary == TrialOutcome.handed_over("pid 4242 on node-b")
    after = {p.name: p.read_bytes() for p in trial.path.iterdir() if p.is_file()}
    assert after == before  # not one more metrics line, checkpoint, done.json or failed.json
    assert [json.loads(line)["epoch"] for line in trial.metrics_file.read_text().splitlines()] == [1, 2]
    out = capsys.readouterr().out.splitlines()
    assert out == [f"standard sym:0.4 seed 0: lost the lease on {trial.path.name} to pid 4242 on node-b while "
                   "suspended; left to it"]


def test_a_write_that_fails_after_the_takeover_is_not_recorded_as_a_failure(tmp_path, monkeypatch):
    """Suspended inside save_checkpoint (after its check) while the new holder moved checkpoint.pt
    away: the woken writer's move fails, and that is the other process's trial now, not a failed one."""
    def frozen_inside_the_write(trial):
        def save_checkpoint(self, payload, epoch):
            raise FileNotFoundError(2, "No such file or directory", str(self.checkpoint_file))

        monkeypatch.setattr(TrialDir, "append_metrics", lambda self, line: None)  # written before the freeze
        monkeypatch.setattr(TrialDir, "save_checkpoint", save_checkpoint)

    trial, summary = suspended_and_taken_over(tmp_path, monkeypatch, 1, frozen_inside_the_write)
    assert summary.state == "handed over", summary
    assert not trial.failed_file.exists() and not trial.done_file.exists()


def test_an_inline_sweep_counts_a_handed_over_trial_and_waits_for_its_taker(tmp_path, monkeypatch, capsys):
    """The sweep goes on, waits for the trial like a held one, and claims it neither done nor failed."""
    from noisybench.bench import launch
    from noisybench.bench.trainer.trial import run_trial
    from noisybench.core.layout import HANDED_OVER

    specs = [spec(seed=0, epochs=2), spec(seed=1, epochs=2)]
    taken = {}

    def trial_fn(s, root, **kwargs):
        if s.seed == 0 and not taken:
            taken["yes"] = True  # the other host takes it over and finishes it while we train seed 1
            fake_trial(Path(root), s, accs=(0.5, 0.6))
            return TrialOutcome.handed_over("pid 4242 on node-b")
        return run_trial(s, root, **kwargs)

    counts = launch.run_inline(specs, tmp_path, trial_fn=trial_fn, device="cpu")
    assert counts == {"done": 1, "failed": 0, HANDED_OVER: 1}
    out = capsys.readouterr().out
    assert "[2/2] standard     sym:0.4    seed 0: handed over to pid 4242 on node-b, which finished it" in out, out
    assert "2 trials run in" in out and "(0 failed, 1 handed over)" in out, out


# --------------------------------------------------------------------------------------
# Identity on resume
# --------------------------------------------------------------------------------------
def killed_after(epochs: int, monkeypatch):
    from noisybench.bench.trainer.loop import Trainer

    real = Trainer.train_epoch

    class Killed(BaseException):
        pass

    def train_epoch(self, epoch, max_steps=None):
        if epoch == epochs:
            raise Killed()
        return real(self, epoch, max_steps)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    return Killed


def test_a_replaced_label_file_stops_the_sweep_in_one_line(tmp_path, capsys):
    import noisybench.datasets as datasets
    import noisybench.noise as noise

    digits = datasets.load("digits")
    labels = tmp_path / "labels.npy"
    np.save(labels, noise.apply_noise(noise.parse_noise("sym:0.3"), digits, 0).labels)
    sweep = ["run", "--noise", f"file:{labels}", "--epochs", "2", "--results", str(tmp_path / "r"), "--device", "cpu"]
    assert main(sweep) == 0
    capsys.readouterr()
    np.save(labels, noise.apply_noise(noise.parse_noise("sym:0.3"), digits, 1).labels)  # replaced in place
    assert main(sweep) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the label file" in err


def test_a_cpu_resume_runs_on_the_thread_count_it_started_with(tmp_path, monkeypatch, capsys):
    import torch

    from noisybench.bench.trainer.trial import run_trial

    killed = killed_after(2, monkeypatch)
    with pytest.raises(killed):
        run_trial(spec(epochs=4), tmp_path, device="cpu")
    monkeypatch.undo()
    record = TrialStore(tmp_path).trial(spec(epochs=4)).read_spec()
    assert record["cpu_threads"] == torch.get_num_threads() == 1
    seen = []
    from noisybench.bench.trainer.loop import Trainer

    real = Trainer.train_epoch
    monkeypatch.setattr(Trainer, "train_epoch",
                        lambda self, epoch, max_steps=None: seen.append(torch.get_num_threads()) or real(self, epoch))
    torch.set_num_threads(2)
    try:
        summary = run_trial(spec(epochs=4), tmp_path, device="cpu")
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(1)
    assert summary.resumed_from == 2 and seen == [1, 1]
    assert "resumed on 1 CPU threads" in capsys.readouterr().out


def test_status_shows_a_trial_held_by_a_live_process_as_running(tmp_path, capsys):
    trial = TrialStore(tmp_path).trial(spec())
    trial.path.mkdir(parents=True)
    trial.spec_file.write_text(json.dumps({"spec": spec().to_json(), "hash": spec().hash, "recipe": {"epochs": 3}}))
    code = ("import sys, time; from noisybench.results.lease import TrialLease; "
            "assert TrialLease(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(trial.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["status", "--results", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "running 1" in out and f"held by pid {holder.pid}" in out
    finally:
        holder.kill()
        holder.wait()


def test_a_trial_is_not_resumed_in_another_precision(tmp_path, monkeypatch):
    """Precision None is the device's default: a trial started in bf16 (a GPU) must not be finished
    in fp32 (a CPU) as one run; the sweep stops in one line and the trial is left as it was."""
    from noisybench.bench.trainer.trial import run_trial

    killed = killed_after(2, monkeypatch)
    with pytest.raises(killed):
        run_trial(spec(epochs=4), tmp_path, device="cpu")
    monkeypatch.undo()
    trial = TrialStore(tmp_path).trial(spec(epochs=4))
    record = trial.read_spec()
    assert record["arithmetic"]["precision"] == "fp32"
    trial.spec_file.write_text(json.dumps({**record, "arithmetic": {**record["arithmetic"], "precision": "bf16"}}))
    lines_before = trial.metrics_file.read_text()
    with pytest.raises(BenchError, match="was started in bf16 and would resume in fp32"):
        run_trial(spec(epochs=4), tmp_path, device="cpu")
    assert trial.state == "incomplete" and trial.metrics_file.read_text() == lines_before


def test_a_damaged_trial_held_by_a_live_writer_is_left_to_it(tmp_path, capsys):
    """Two writers on one trial: setting a damaged trial aside must not move its lock from under
    the process that holds it (that process would train on, unlocked, beside the next one)."""
    from noisybench.bench.checks import set_aside_damaged

    bad = fake_trial(tmp_path, spec(1))
    bad.metrics_file.write_text(bad.metrics_file.read_text().replace("0.7", "0.9"))
    writer = TrialLease(bad.path)
    assert writer.acquire()
    try:
        said = []
        set_aside_damaged([spec(1)], tmp_path, said.append)
        assert main(["verify", "--results", str(tmp_path), "--repair"]) == 1  # still damaged, left in place
        assert said == [] and bad.metrics_file.exists() and not (tmp_path / ".damaged").exists()
        assert read_holder(bad.path).token == writer.me.token
    finally:
        writer.release()
    set_aside_damaged([spec(1)], tmp_path, said.append)  # free now: moved aside, the directory gone
    assert len(said) == 1 and "moved aside" in said[0] and not bad.path.exists()


def test_a_lock_whose_directory_was_removed_is_not_held(tmp_path):
    """remove_directory() unlinks the lock: a process that opened the old lock file just before must
    not count the orphaned lock as the trial's, or two writers could each hold "the" lease."""
    first = TrialLease(tmp_path / "trial")
    assert first.acquire()
    orphan = os.open(tmp_path / "trial" / "lease.lock", os.O_RDWR)
    first.remove_directory()
    assert not (tmp_path / "trial").exists()
    assert not lease_module._still_named(orphan, tmp_path / "trial" / "lease.lock")
    os.close(orphan)
    second, third = TrialLease(tmp_path / "trial"), TrialLease(tmp_path / "trial")
    assert second.acquire() and not third.acquire()  # one lock file again, one holder
    second.release()


def test_a_trial_trained_under_another_default_is_refused_not_skipped(tmp_path, monkeypatch, capsys):
    """A method's default can change between versions without changing the trial hash (ELR's beta
    and lambda on pair noise did): the finished trial must not be skipped and tabled as if it had
    been trained with today's values, in a run or in a dry run."""
    from noisybench.methods import elr

    argv = ["run", "--methods", "elr", "--noise", "pair:0.35", "--seeds", "1", "--epochs", "1",
            "--results", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    monkeypatch.setattr(elr, "ASYMMETRIC_10", (0.8, 2.0))  # the default this trial was not trained with
    for extra in ([], ["--dry-run"]):
        assert main(argv + extra) == 2
        err = capsys.readouterr().err
        assert "other hyperparameters" in err and "elr.beta: 0.9 -> 0.8" in err and len(err.splitlines()) == 1
