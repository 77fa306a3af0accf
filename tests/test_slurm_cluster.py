"""End-to-end checks against a running SLURM cluster (e.g. the one slurm/start_cluster.sh starts).

Skipped unless `sinfo` is on PATH and answers within 10 s.  Jobs run stdlib functions only, so
that nothing from this test module has to be importable on the compute node.
"""

from __future__ import annotations

import operator
import os
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm

submitit = pytest.importorskip("submitit")

DEADLINE_S = 30.0


@pytest.fixture(scope="module", autouse=True)
def _cluster() -> None:
    if shutil.which("sinfo") is None:
        pytest.skip("no SLURM: `sinfo` is not on PATH (start one with slurm/start_cluster.sh)")
    try:
        proc = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.skip("no SLURM: `sinfo -h` did not answer within 10 s")
    if proc.returncode != 0 or not proc.stdout.strip():
        why = " | ".join(line for line in (proc.stderr or proc.stdout).splitlines() if line.strip())
        pytest.skip(f"no SLURM: `sinfo -h` failed (exit {proc.returncode}): {why[:300]}")


@pytest.fixture
def executor(tmp_path):
    ex = submitit.AutoExecutor(folder=tmp_path / "%j")
    assert ex.cluster == "slurm"
    ex.update_parameters(timeout_min=5, cpus_per_task=1)
    return ex


def _wait_state(job, accept, deadline_s: float = DEADLINE_S) -> str:
    """Poll sacct (forced, not submitit's growing back-off) until the state starts with one of accept."""
    end = time.monotonic() + deadline_s
    while True:
        state = job.watcher.get_state(job.job_id, mode="force")
        if state.startswith(accept) or time.monotonic() > end:
            return state
        time.sleep(0.3)


def test_submitit_job_runs_in_slurm(executor):
    job = executor.submit(os.getenv, "SLURM_JOB_ID")
    mul = executor.submit(operator.mul, 6, 7)
    assert job.result() == job.job_id
    assert mul.result() == 42
    assert _wait_state(job, ("COMPLETED",)) == "COMPLETED"  # accounting (sacct) sees it


def test_job_array(executor):
    jobs = executor.map_array(os.getenv, ["SLURM_ARRAY_TASK_ID"] * 3)
    array_id = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_{i}" for i in range(3)]
    assert [j.result() for j in jobs] == ["0", "1", "2"]


def test_cancelled_job_is_reported(executor):
    job = executor.submit(time.sleep, 300)
    assert _wait_state(job, ("RUNNING",)) == "RUNNING"
    job.cancel()
    assert _wait_state(job, ("CANCELLED",)).startswith("CANCELLED")
    # result() then still waits _results_timeout_s (15 s) for a result file on a slow filesystem;
    # submitit's own tests shorten it the same way.
    job._results_timeout_s = 1
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="CANCELLED"):
        job.result()
