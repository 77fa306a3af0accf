"""Launchers without SLURM: the local launcher (submitit's LocalExecutor) against inline, only the
missing trials submitted, a preempted worker requeued and resumed, a failing trial inside a batch,
`bench status` on a hand-made store, and one-line errors for bad launcher options."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import epoch_metrics, finish_trial, wait_until

from noisybench.bench.cli import main
from noisybench.bench.trainer import run_trial
from noisybench.core.layout import DONE, FAILED, INCOMPLETE
from noisybench.core.spec import TrialSpec
from noisybench.results.store import TrialStore, write_checked
from noisybench.slurm.commands import parse_mem
from noisybench.slurm.job import TrialBatch, task_progress_file
from noisybench.slurm.options import LauncherOptions
from noisybench.slurm.queue import local_job_alive
from noisybench.slurm.status import NOT_STARTED, PENDING, RUNNING, collect_status
from noisybench.slurm.submission import chunk_trials, load_submissions

EPOCHS = 3
SWEEP = ["--methods", "standard", "--noise", "sym:0.4", "--epochs", str(EPOCHS), "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def spec(seed: int, **changes) -> TrialSpec:
    fields = dict(dataset="digits", method="standard", noise="sym:0.4", seed=seed, protocol="quick", epochs=EPOCHS)
    fields.update(changes)
    return TrialSpec(**fields)


@pytest.fixture(scope="module")
def inline_results(tmp_path_factory) -> Path:
    """The reference: seeds 0 and 1 run inline."""
    results = tmp_path_factory.mktemp("inline")
    assert main(["run", *SWEEP, "--seeds", "2", "--results", str(results)]) == 0
    return results


# --------------------------------------------------------------------------------------
# The local launcher end to end
# --------------------------------------------------------------------------------------
def test_local_launcher_equals_inline_and_submits_only_missing_trials(inline_results, tmp_path, capsys):
    results = tmp_path / "local"
    assert main(["run", *SWEEP, "--seeds", "1", "--launcher", "local", "--results", str(results)]) == 0
    first_done = (results / spec(0).dirname / "done.json").stat().st_mtime_ns
    capsys.readouterr()

    assert main(["run", *SWEEP, "--seeds", "2", "--launcher", "local", "--workers", "2",
                 "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 trials already done" in out
    assert "| standard" in out  # the table at the end
    submissions = load_submissions(results)
    assert len(submissions) == 2
    assert [t["dir"] for task in submissions[1]["tasks"] for t in task["trials"]] == [spec(1).dirname]
    assert (results / spec(0).dirname / "done.json").stat().st_mtime_ns == first_done  # not rerun

    for seed in (0, 1):
        local = epoch_metrics(results, spec(seed))
        assert len(local) == EPOCHS
        assert local == epoch_metrics(inline_results, spec(seed))

    assert main(["status", "--results", str(results)]) == 0
    assert "2 trials: done 2 | running 0 | pending 0 | failed 0 | incomplete 0" in capsys.readouterr().out


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_preempted_local_worker_is_requeued_and_resumes_from_its_checkpoint(inline_results, tmp_path, capsys):
    results = tmp_path / "preempted"
    assert main(["run", *SWEEP, "--seeds", "1", "--launcher", "local", "--no-wait", "--results", str(results)]) == 0
    assert "bench status --results" in capsys.readouterr().out
    (task,) = load_submissions(results)[0]["tasks"]
    controller = int(task["job_id"])
    trial = TrialStore(results).trial(spec(0))

    # The first checkpoint, not just the first metrics line: a signal between the two (the worker
    # is writing the checkpoint) leaves nothing to resume from, and the trial rightly restarts.
    wait_until(lambda: (trial.checkpointed_epoch() or 0) >= 1, 120, "the first checkpoint", 0.05)
    assert collect_status(results).trials[spec(0).dirname].state == RUNNING
    # What SLURM sends before a time limit or a preemption: submitit checkpoints and requeues.
    for worker in _children(controller):
        os.kill(worker, signal.SIGUSR2)
    wait_until(lambda: not local_job_alive(str(controller)), 180, "the requeued worker to finish")

    done = trial.read_done()
    assert 1 <= done["resumed_from"] < EPOCHS, done
    assert epoch_metrics(results, spec(0)) == epoch_metrics(inline_results, spec(0))
    assert "requeued" in Path(task["stdout"]).read_text()
    assert collect_status(results).counts()[DONE] == 1


def test_a_failing_trial_does_not_stop_the_rest_of_its_batch(tmp_path, monkeypatch):
    # What submitit's local executor sets in a job, so that JobEnvironment knows the job id.
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
    bad, good = spec(0, noise="sym:1.4"), spec(1, epochs=1)
    batch = TrialBatch(str(tmp_path), "sub1", run_trial, {"device": "cpu"})
    assert batch([bad, good]) == [
        {"trial": bad.dirname, "state": FAILED}, {"trial": good.dirname, "state": DONE}]
    store = TrialStore(tmp_path)
    assert store.state(bad) == FAILED and store.state(good) == DONE
    progress = json.loads(task_progress_file(tmp_path, "sub1", "4242").read_text())
    assert progress["current"] is None
    assert progress["finished"] == {bad.dirname: FAILED, good.dirname: DONE}


def handed_over_once(taken: set):
    """A trial function whose first call on seed 0 finds the trial taken over while it was suspended:
    the taker (run here, for the test) finishes it, and this call reports the trial handed over."""
    from noisybench.results.outcome import TrialOutcome

    def trial_fn(s, root, **kwargs):
        if s.seed == 0 and not taken:
            taken.add(s.dirname)
            run_trial(s, root, **kwargs)  # the other host's work
            return TrialOutcome.handed_over("pid 4242 on node-b")
        return run_trial(s, root, **kwargs)

    return trial_fn


def test_a_batch_task_waits_for_a_trial_it_handed_over_and_does_not_claim_it(tmp_path, monkeypatch, capsys):
    """A requeued SLURM task whose predecessor is still alive is the same race as a suspended one."""
    from noisybench.core.layout import HANDED_OVER

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
    first, second = spec(0, epochs=1), spec(1, epochs=1)
    batch = TrialBatch(str(tmp_path), "sub1", handed_over_once(set()), {"device": "cpu"})
    assert batch([first, second]) == [
        {"trial": first.dirname, "state": HANDED_OVER}, {"trial": second.dirname, "state": DONE}]
    out = capsys.readouterr().out
    assert "[1/2] standard     sym:0.4    seed 0: handed over to pid 4242 on node-b, which finished it" in out, out
    assert json.loads(task_progress_file(tmp_path, "sub1", "4242").read_text())["finished"] == {
        first.dirname: HANDED_OVER, second.dirname: DONE}


def test_a_packed_sweep_counts_a_handed_over_trial(tmp_path, monkeypatch, capsys):
    from noisybench.bench import inline, launch
    from noisybench.core.layout import HANDED_OVER

    def in_this_process(trials, results_root, trial_fn, trial_kwargs, trials_per_gpu, device):  # the pool, unspawned
        for s in trials:
            yield s, trial_fn(s, results_root, device=device, **trial_kwargs)

    monkeypatch.setattr(inline, "run_trials_packed", in_this_process)
    counts = launch.run_packed([spec(0, epochs=1), spec(1, epochs=1)], tmp_path, trials_per_gpu=2,
                               trial_fn=handed_over_once(set()), device="cpu")
    assert counts == {"done": 1, "failed": 0, HANDED_OVER: 1}
    assert "(0 failed, 1 handed over)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# One outcome type, one launcher shape, the bookkeeping in the sweep
# --------------------------------------------------------------------------------------
def test_the_trial_functions_outcome_is_what_the_store_says(tmp_path):
    """run_trial's outcome of a trained trial is done.json's numbers; a second call finds it done."""
    from noisybench.results.outcome import TrialOutcome

    outcome = run_trial(spec(0, epochs=2), tmp_path, device="cpu")
    done = TrialStore(tmp_path).trial(spec(0, epochs=2)).read_done()
    assert outcome == TrialOutcome.from_summary(done) and outcome.state == DONE and outcome.epochs == 2
    again = run_trial(spec(0, epochs=2), tmp_path, device="cpu")
    assert again.skipped and (again.best, again.last) == (outcome.best, outcome.last)


class ScriptedLauncher:
    """A launcher whose outcomes are given: what the sweep's bookkeeping sees of any launcher."""

    waits = True

    def __init__(self, outcomes):
        self.outcomes, self.trials = outcomes, []

    def submit(self, trials):
        self.trials = list(trials)

    def collect(self):
        for trial in self.trials:
            yield trial, self.outcomes[trial.seed]

    def where(self):
        return "on a script"

    def how_to_follow(self):
        return None


def test_the_sweep_counts_what_any_launcher_collects(tmp_path, monkeypatch):
    """Counts, progress lines, the failed state, a held trial waited for (here: run by the trial
    function once free) and the closing lines come from the sweep, not from the launcher."""
    from noisybench.bench import launch
    from noisybench.results.outcome import TrialOutcome

    outcomes = {0: TrialOutcome.from_summary({"best": 0.9, "best_epoch": 2, "last": 0.8, "seconds": 1.0}),
                1: TrialOutcome.failed("RuntimeError: boom", 0.5),
                2: TrialOutcome.held("pid 4242 on node-b")}
    monkeypatch.setattr(launch, "make_launcher", lambda *args, **kwargs: ScriptedLauncher(outcomes))
    lines = []
    counts = launch.run_sweep([spec(seed, epochs=1) for seed in range(3)], tmp_path, echo=lines.append)
    assert counts == {DONE: 2, FAILED: 1}
    assert lines[0].startswith("[1/3] standard     sym:0.4    seed 0: best 90.00 (epoch 2) last 80.00  1.0 s  [2 left")
    assert lines[1].startswith("[2/3] standard     sym:0.4    seed 1: FAILED after 0.5 s: RuntimeError: boom  [1 left")
    assert lines[2] == f"{spec(2, epochs=1).label()}: being trained by pid 4242 on node-b; waited for after the others"
    assert lines[3].startswith("[3/3] standard     sym:0.4    seed 2: best ")  # trained here once free
    assert lines[4].startswith("3 trials run in ") and lines[4].endswith(" s (1 failed) on a script")
    assert lines[5].startswith("1 trials did not finish: `bench status --results")
    assert TrialStore(tmp_path).state(spec(2, epochs=1)) == DONE


def test_following_a_job_that_died_reports_its_trials_failed_and_resumable(tmp_path):
    """The local and slurm launchers' collect: a trial its (dead) job left incomplete, and one it
    never started, end the follow as failed for this sweep; the store keeps the first resumable."""
    from noisybench.slurm.follow import follow

    root = tmp_path / "runs"
    started, never = spec(0), spec(1)
    write_trial(root, started, 2, None)
    write_submission(root, "dead", [("999999999", [started, never])])
    (first, a), (second, b) = list(follow([started, never], root, echo=lambda line: None, poll_s=0))
    assert (first, second) == (started, never) and a.state == b.state == FAILED
    assert a.error == "its job ended before the trial finished (incomplete; a rerun resumes it from its last checkpoint)"
    assert b.error == "its job ended before the trial finished (not started)"
    assert collect_status(root).trials[started.dirname].state == INCOMPLETE


def test_checkpoint_requeues_the_same_batch_with_the_same_trials(tmp_path):
    import cloudpickle

    batch = TrialBatch(str(tmp_path), "sub1", run_trial, {"device": "cpu", "checkpoint_every": 1})
    delayed = batch.checkpoint([spec(0)])
    assert delayed.function is batch and delayed.args == ([spec(0)],)
    copy = cloudpickle.loads(cloudpickle.dumps(delayed))  # what submitit writes for the requeued task
    assert copy.function.trial_kwargs == batch.trial_kwargs and copy.args == delayed.args


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so run_trial leaves the trial incomplete."""


def test_kill_between_metrics_line_and_checkpoint_neither_loses_nor_repeats_an_epoch(inline_results, tmp_path,
                                                                                     monkeypatch):
    import noisybench.results.store as store_module
    from noisybench.bench.trainer.trial import run_trial

    real_write = store_module.atomic_write_bytes
    checkpoints = []

    def killed_while_writing_the_second_checkpoint(path, data, *args, **kwargs):
        if Path(path).name == "checkpoint.pt":
            checkpoints.append(path)
            if len(checkpoints) == 2:
                raise Killed()
        real_write(path, data, *args, **kwargs)

    monkeypatch.setattr(store_module, "atomic_write_bytes", killed_while_writing_the_second_checkpoint)
    with pytest.raises(Killed):
        run_trial(spec(0), tmp_path, device="cpu")
    trial = TrialStore(tmp_path).trial(spec(0))
    assert [m["epoch"] for m in trial.read_metrics()] == [1, 2]  # epoch 2's line, epoch 1's checkpoint
    monkeypatch.undo()

    summary = run_trial(spec(0), tmp_path, device="cpu")
    assert summary.resumed_from == 1
    assert epoch_metrics(tmp_path, spec(0)) == epoch_metrics(inline_results, spec(0))


@pytest.mark.parametrize("damaged, resumed_from", [
    (("checkpoint.pt",), 1),  # the last good state: the checkpoint before it (epoch 1)
    (("checkpoint.pt", "previous-checkpoint.pt"), 0),  # no good state left: from scratch
])
def test_unreadable_checkpoint_restarts_the_trial_without_repeating_epochs(inline_results, tmp_path, monkeypatch,
                                                                           damaged, resumed_from):
    from noisybench.bench.trainer.loop import Trainer
    from noisybench.bench.trainer.trial import run_trial

    real_epoch = Trainer.train_epoch

    def killed_in_epoch_3(self, epoch):
        if epoch == 2:
            raise Killed()
        return real_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_epoch_3)
    with pytest.raises(Killed):
        run_trial(spec(0), tmp_path, device="cpu")
    monkeypatch.undo()
    for name in damaged:
        checkpoint = TrialStore(tmp_path).trial(spec(0)).path / name
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])  # cut by a crash

    summary = run_trial(spec(0), tmp_path, device="cpu")
    assert summary.resumed_from == resumed_from
    assert epoch_metrics(tmp_path, spec(0)) == epoch_metrics(inline_results, spec(0))


# --------------------------------------------------------------------------------------
# bench status on a hand-made store
# --------------------------------------------------------------------------------------
def write_trial(root: Path, s: TrialSpec, epochs_run: int, state: str | None) -> Path:
    path = root / s.dirname
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"spec": s.to_json(), "hash": s.hash, "recipe": {"epochs": 5}}))
    (path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "test_acc": 0.5}) + "\n"
                                                for e in range(epochs_run)))
    if state == DONE:
        finish_trial(path)
    if state == FAILED:
        (path / "failed.json").write_text(json.dumps({
            "state": FAILED, "error": "ValueError: first line", "failed_at": time.time(),
            "traceback": "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom at epoch 2\n"}))
    return path


def write_submission(root: Path, submission: str, tasks: list[tuple[str, list[TrialSpec]]]) -> None:
    folder = root / ".submitit" / "submissions"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"submission": submission, "launcher": "local", "job": tasks[0][0], "submitted_at": time.time(),
              "host": os.uname().nodename, "log_folder": str(root / ".submitit"),
              "tasks": [{"job_id": job, "stdout": f"/logs/{job}_0_log.out", "stderr": f"/logs/{job}_0_log.err",
                         "trials": [{"dir": s.dirname, "label": s.label()} for s in specs]}
                        for job, specs in tasks]}
    (folder / f"20260101-000000_local_{submission}.json").write_text(json.dumps(record))


def test_status_counts_states_and_shows_errors_and_logs(tmp_path, capsys):
    import socket

    root = tmp_path / "runs"
    done, failed, incomplete, running, pending, never = (spec(seed) for seed in range(6))
    write_trial(root, done, 5, DONE)
    write_trial(root, failed, 2, FAILED)
    write_trial(root, incomplete, 4, None)  # epoch 4's line written, its checkpoint not yet
    write_checked(root / incomplete.dirname / "checkpoint.pt", b"state", {"epoch": 3})
    write_trial(root, running, 1, None)
    # A live "job": a process whose command line names submitit, as a local controller's does.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "submitit"])
    try:
        write_submission(root, "old", [("999999999", [failed, incomplete, never])])
        write_submission(root, "new", [(str(live.pid), [running, pending])])
        progress = task_progress_file(root, "new", str(live.pid))
        progress.parent.mkdir(parents=True)
        progress.write_text(json.dumps({"submission": "new", "current": running.dirname, "finished": {}}))
        assert socket.gethostname() == os.uname().nodename

        report = collect_status(root)
        states = {name: t.state for name, t in report.trials.items()}
        assert states == {done.dirname: DONE, failed.dirname: FAILED, incomplete.dirname: INCOMPLETE,
                          running.dirname: RUNNING, pending.dirname: PENDING, never.dirname: NOT_STARTED}

        assert main(["status", "--results", str(root)]) == 0
        out = capsys.readouterr().out
    finally:
        live.kill()
        live.wait()
    assert "6 trials: done 1 | running 1 | pending 1 | failed 1 | incomplete 1 | not started 1" in out
    failed_block = out[out.index("failed      standard sym:0.4 seed 1"):]
    assert failed_block.splitlines()[0].endswith("ValueError: boom at epoch 2")  # the traceback's last line
    assert str(root / failed.dirname / "failed.json") in failed_block
    assert "/logs/999999999_0_log.out" in failed_block and "/logs/999999999_0_log.err" in failed_block
    assert f"running     standard sym:0.4 seed 3: epoch 1/5, local job (pid) {live.pid}" in out
    assert "incomplete  standard sym:0.4 seed 2: epoch 3/5 checkpointed" in out
    assert "rerun the same `bench run` command" in out

    # Once the job is gone, its unfinished trials are incomplete (started) or not started.
    after = {name: t.state for name, t in collect_status(root).trials.items()}
    assert after[running.dirname] == INCOMPLETE and after[pending.dirname] == NOT_STARTED


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--launcher", "foo"], "invalid choice: 'foo'"),
        (["--launcher", "slurm", "--trials-per-job", "0"], "--trials-per-job 0: must be at least 1"),
        (["--launcher", "slurm", "--slurm", "qos"], "--slurm qos: expected KEY=VALUE"),
        (["--launcher", "slurm", "--slurm", "=high"], "expected KEY=VALUE"),
        (["--launcher", "slurm", "--slurm", "output=x.log"], "submitit sets --output itself"),
        (["--launcher", "slurm", "--slurm", "partition=gpu"], "use --partition instead"),
        (["--launcher", "slurm", "--mem", "lots"], "--mem lots"),
        (["--launcher", "slurm", "--time", "0"], "--time 0"),
        (["--launcher", "slurm", "--workers", "2"], "--workers applies to --launcher local only"),
        (["--launcher", "local", "--partition", "gpu"], "--partition applies to --launcher slurm only"),
        (["--launcher", "local", "--trials-per-job", "2"], "--trials-per-job applies to --launcher slurm only"),
        (["--launcher", "local", "--workers", "0"], "--workers 0"),
        (["--launcher", "local", "--max-requeues", "-1"], "--max-requeues -1"),
        (["--workers", "2"], "--workers needs --launcher local or slurm"),
        (["--no-wait"], "--wait/--no-wait needs --launcher local or slurm"),
        (["--launcher", "local", "--methods", "nosuch"], "unknown method 'nosuch'"),
    ],
)
def test_bad_launcher_options_are_one_line_exit_2_and_write_nothing(args, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["run", *SWEEP, *args, "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert list(tmp_path.iterdir()) == []


def test_slurm_launcher_without_slurm_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    assert main(["run", *SWEEP, "--launcher", "slurm", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "sbatch/srun not found on PATH" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_status_of_a_missing_directory_is_one_line(tmp_path, capsys):
    assert main(["status", "--results", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [("16G", "16G"), ("16GB", "16G"), ("1.5G", "1536M"), ("4000", "4000"),
                                            ("4000m", "4000M")])
def test_mem_sizes_in_sbatch_form(text, expected):
    assert parse_mem(text) == expected


def test_sbatch_script_carries_the_options():
    from submitit.slurm.slurm import _make_sbatch_string

    options = LauncherOptions(launcher="slurm", partition="gpu", time_min=30, gpus_per_task=1, cpus_per_task=4,
                            mem="16G", array_parallelism=2, sbatch_options=(("qos", "high"),),
                            setup_lines=("module load cuda",))
    script = _make_sbatch_string(command="python -m x", folder="/tmp/%j", map_count=5, **options.slurm_parameters())
    for line in ("#SBATCH --array=0-4%2", "#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16G", "#SBATCH --qos=high", "module load cuda",
                 "#SBATCH --signal=USR2@90"):
        assert line in script, line


def test_trials_are_grouped_per_array_task_or_spread_over_workers():
    specs = [spec(seed) for seed in range(7)]
    slurm = chunk_trials(specs, LauncherOptions(launcher="slurm", trials_per_job=3), workers=0)
    assert [[s.seed for s in chunk] for chunk in slurm] == [[0, 1, 2], [3, 4, 5], [6]]
    local = chunk_trials(specs, LauncherOptions(launcher="local"), workers=2)
    assert [[s.seed for s in chunk] for chunk in local] == [[0, 2, 4, 6], [1, 3, 5]]
