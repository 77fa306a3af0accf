"""benchmarks/device_check.sh end to end on the CPU with --tiny sizes (about 1.5 minutes).

The prepared GPU check runs here on a tiny model first: every step in its own subprocess, a
kill and resume of a real trial, and both summaries written.  The script is run as a person
would run it from a bare checkout (the namespace shim, no install needed), with this venv's
interpreter.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from noisybench.bench.catalogue import builtin_methods

ROOT = Path(__file__).resolve().parent.parent
# The real Fashion-MNIST step needs the files `make data` installs; without them it is left out here
# (tests/test_datasets_idx.py says why, in its skip reason).
HAVE_FASHION_MNIST = (Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file()
                      or (ROOT / "data" / "FashionMNIST" / "raw").is_dir())
STEPS = tuple(name for name in ("environment", "pytest", "fashion", "speed", "pack", "lend", "precision", "trainer",
                                "resume") if HAVE_FASHION_MNIST or name != "fashion")


@pytest.mark.slow
def test_device_check_passes_on_the_cpu_with_tiny_sizes(tmp_path):
    out = tmp_path / "out"
    venv_python = ROOT / ".venv" / "bin" / "python"
    env = {**os.environ, "PYTHON": str(venv_python if venv_python.exists() else sys.executable),
           "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    # Its own session, so that on a timeout the whole tree (the script's children too) is killed.
    proc = subprocess.Popen([str(ROOT / "benchmarks" / "device_check.sh"), "--device", "cpu", "--tiny", "--out",
                             str(out), "--steps", ",".join(STEPS)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=600)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, output[-6000:]
    report = json.loads((out / "device_check.json").read_text())
    markdown = (out / "device_check.md").read_text()
    statuses = {step["name"]: step["status"] for step in report["steps"]}
    assert statuses == dict.fromkeys(STEPS, "ok"), statuses
    assert report["passed"] and report["device"] == "cpu"
    assert "cpu" in markdown and "PASSED" in markdown
    steps = {step["name"]: step["results"] for step in report["steps"]}
    # The checkout was imported through the shim, not an installed copy.
    assert "nb-shim" in steps["environment"]["noisybench_path"][0]
    assert {row["loop"] for row in steps["speed"]["rows"]} >= {"standard", "lend", "self_learning"}
    assert [p["processes"] for p in steps["pack"]["pack"]] == [1, 2]
    assert steps["precision"]["bf16_over_fp32_img_per_s"] > 0
    assert {t["method"] for t in steps["trainer"]["trials"]} == set(builtin_methods())  # every built-in method
    if HAVE_FASHION_MNIST:
        assert {t["method"] for t in steps["fashion"]["trials"]} == {"standard", "coteaching"}
    assert steps["resume"]["trials"][0]["resumed_from"] >= 1
