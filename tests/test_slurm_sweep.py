"""`bench run --launcher slurm` against a real SLURM cluster (e.g. slurm/start_cluster.sh's).

Skipped when no cluster answers (`sinfo`), unless NOISYBENCH_REQUIRE_SLURM=1 (CI: .ci/slurm_tests.sh),
which turns the skip into a failure.  The results go under $NOISYBENCH_SLURM_TEST_DIR when set (on a
multi-node cluster it must be a directory every node sees), else under pytest's tmp_path.
$NOISYBENCH_SLURM_PARTITION picks a partition other than the default one.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers import epoch_metrics, wait_until

from noisybench.bench.cli import main
from noisybench.core.layout import DONE, FAILED, INCOMPLETE
from noisybench.core.spec import TrialSpec
from noisybench.results.store import TrialStore
from noisybench.slurm.queue import slurm_live_states
from noisybench.slurm.status import PENDING, RUNNING, collect_status
from noisybench.slurm.submission import load_submissions

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("one_cpu_thread")]

SWEEP = ["--methods", "standard", "--noise", "sym:0.4", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def _cluster() -> None:
    def no_cluster(reason: str):
        if os.environ.get("NOISYBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"NOISYBENCH_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)

    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        no_cluster("no SLURM: sinfo/sbatch not on PATH (start one with slurm/start_cluster.sh)")
    try:
        proc = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        no_cluster("no SLURM: `sinfo -h` did not answer within 10 s")
    if proc.returncode != 0 or not proc.stdout.strip():
        no_cluster(f"no SLURM: `sinfo -h` failed: {(proc.stderr or proc.stdout).strip()[:200]}")


@pytest.fixture
def workdir(tmp_path):
    shared = os.environ.get("NOISYBENCH_SLURM_TEST_DIR")
    if not shared:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="slurm-sweep-", dir=shared))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def slurm_args(*extra: str) -> list[str]:
    partition = os.environ.get("NOISYBENCH_SLURM_PARTITION")
    return ["--launcher", "slurm", "--time", "10", *(["--partition", partition] if partition else []), *extra]


def spec(seed: int, epochs: int, batch_size: int | None = None) -> TrialSpec:
    return TrialSpec(dataset="digits", method="standard", noise="sym:0.4", seed=seed, protocol="quick",
                     epochs=epochs, batch_size=batch_size)


def test_sweep_through_one_job_array_equals_inline(workdir, capsys):
    epochs, seeds = 2, 4
    inline, cluster = workdir / "inline", workdir / "slurm"
    assert main(["run", *SWEEP, "--epochs", str(epochs), "--seeds", str(seeds), "--results", str(inline)]) == 0
    capsys.readouterr()

    # Two trials per array task: a 2-task array, both tasks at once on a 2-CPU node.
    assert main(["run", *SWEEP, "--epochs", str(epochs), "--seeds", str(seeds), "--results", str(cluster),
                 *slurm_args("--trials-per-job", "2")]) == 0
    out = capsys.readouterr().out
    (submission,) = load_submissions(cluster)
    assert [len(task["trials"]) for task in submission["tasks"]] == [2, 2]
    array = submission["job"]
    assert [task["job_id"] for task in submission["tasks"]] == [f"{array}_0", f"{array}_1"]
    assert f"submitted SLURM job array {array}: 4 trials in 2 tasks" in out
    assert "done 4 | running 0 | pending 0 | failed 0 | incomplete 0" in out

    for seed in range(seeds):
        ran = epoch_metrics(cluster, spec(seed, epochs))
        assert len(ran) == epochs
        assert ran == epoch_metrics(inline, spec(seed, epochs)), f"seed {seed}"
    # The tables agree too (timings are not in them).
    assert main(["table", "--results", str(cluster)]) == 0
    cluster_table = capsys.readouterr().out
    assert main(["table", "--results", str(inline)]) == 0
    assert cluster_table == capsys.readouterr().out

    assert main(["status", "--results", str(cluster)]) == 0
    assert "4 trials: done 4 | running 0 | pending 0 | failed 0 | incomplete 0" in capsys.readouterr().out


def test_unknown_partition_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["run", *SWEEP, "--epochs", "1", "--results", str(tmp_path / "r"), "--launcher", "slurm",
                 "--partition", "no-such-partition"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--partition no-such-partition: no such partition; choose one of:" in err
    assert list(tmp_path.iterdir()) == []


def kill_wait_s() -> int:
    """Seconds SLURM lets a cancelled job run on: submitit ignores SIGTERM, so only SIGKILL stops it."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"^KillWait\s*=\s*(\d+)", config, re.MULTILINE)
    return int(match.group(1)) if match else 30


def test_cancelled_trial_shows_unfinished_and_a_rerun_completes_it(workdir, capsys):
    # Long enough to be cancelled mid-way: an epoch at batch size 4 takes 0.25 s or more on one
    # thread, and the job goes on for KillWait seconds after scancel.
    epochs = max(20, 4 * (kill_wait_s() + 10))
    results = workdir / "cancelled"
    command = ["run", *SWEEP, "--epochs", str(epochs), "--batch-size", "4", "--seeds", "1",
               "--results", str(results), *slurm_args()]
    assert main([*command, "--no-wait"]) == 0
    out = capsys.readouterr().out
    assert "bench status --results" in out and "scancel" in out
    (submission,) = load_submissions(results)
    trial = TrialStore(results).trial(spec(0, epochs, batch_size=4))
    name = spec(0, epochs, batch_size=4).dirname

    wait_until(lambda: collect_status(results).trials[name].state == RUNNING, 90, "the job to start its trial")
    wait_until(lambda: len(trial.read_metrics()) >= 1, 90, "the first epoch", 0.1)
    subprocess.run(["scancel", submission["job"]], check=True)
    # Cancelled: COMPLETING while SLURM kills it, then gone from the queue.
    wait_until(lambda: collect_status(results).trials[name].state not in (RUNNING, PENDING), 60, "the job to end")

    assert main(["status", "--results", str(results)]) == 0
    status = capsys.readouterr().out
    state = collect_status(results).trials[name].state
    assert state in (INCOMPLETE, FAILED), status
    assert f"{state:<11} standard sym:0.4 seed 0" in status
    assert f"SLURM job {submission['job']}" in status and "log: " in status
    epochs_before = len(trial.read_metrics())
    assert 1 <= epochs_before < epochs, "the job finished before it was cancelled: make the trial longer"

    # The same command again: only this trial is submitted, and it resumes from its checkpoint.
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "done 1 | running 0 | pending 0 | failed 0 | incomplete 0" in out
    assert len(load_submissions(results)) == 2
    done = trial.read_done()
    if state == INCOMPLETE:  # killed mid-epoch: resumed from the last epoch checkpoint, not redone
        assert done["resumed_from"] >= 1
    assert [m["epoch"] for m in trial.read_metrics()] == list(range(1, epochs + 1))  # no epoch twice
    assert collect_status(results).counts()[DONE] == 1


def test_preempted_task_is_requeued_and_resumes_to_the_uninterrupted_result(workdir, capsys):
    epochs = 20
    inline, cluster = workdir / "inline", workdir / "preempted"
    sweep = [*SWEEP, "--epochs", str(epochs), "--batch-size", "4", "--seeds", "1"]
    assert main(["run", *sweep, "--results", str(inline)]) == 0
    assert main(["run", *sweep, "--results", str(cluster), *slurm_args("--no-wait")]) == 0
    capsys.readouterr()
    (submission,) = load_submissions(cluster)
    job = submission["job"]
    trial = TrialStore(cluster).trial(spec(0, epochs, batch_size=4))

    wait_until(lambda: len(trial.read_metrics()) >= 1, 90, "the first epoch", 0.1)
    # What SLURM sends before the time limit (and submitit's own preemption test sends): USR2.
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait_until(lambda: "Requeued job" in Path(submission["tasks"][0]["stdout"]).read_text(), 60, "the requeue")

    def started_again() -> bool:
        # SLURM holds a requeued job for 120 s (BeginTime); its owner may let it start now, once
        # it is pending again (not while the interrupted run is still completing).
        state = slurm_live_states().get(job, "")
        if state == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        return state == "RUNNING" or trial.done_file.exists()

    wait_until(started_again, 60, "the requeued job to start again", 0.5)
    wait_until(lambda: trial.done_file.exists(), 150, "the requeued job to finish its trial")

    done = trial.read_done()
    assert 1 <= done["resumed_from"] < epochs, done
    assert epoch_metrics(cluster, spec(0, epochs, batch_size=4)) == \
        epoch_metrics(inline, spec(0, epochs, batch_size=4))
    wait_until(lambda: collect_status(cluster).counts()[DONE] == 1 and
               collect_status(cluster).counts()[RUNNING] == 0, 60, "the job to leave the queue")
