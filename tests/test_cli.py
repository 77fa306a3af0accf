"""The bench command: every input error is one line, exit 2, nothing written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noisybench.bench.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "--methods", "nosuch"], "unknown method 'nosuch'"),
        (["run", "--noise", "sym:1.4"], "sym:1.4"),
        (["run", "--noise", "foo:0.2"], "foo"),
        (["run", "--noise", "sym"], "sym"),
        (["run", "--seeds", "0"], "--seeds 0"),
        (["run", "--seeds", "5-2"], "--seeds 5-2"),
        (["run", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
        (["run", "--model", "nosuch"], "unknown model 'nosuch'"),
        (["run", "--protocol", "nosuch"], "unknown protocol 'nosuch'"),
        (["run", "--epochs", "0"], "--epochs 0"),
        (["run", "--hp", "standard.nosuch=1"], "no hyperparameter 'nosuch'"),
        (["run", "--hp", "nonsense"], "METHOD.NAME=VALUE"),
        (["run", "--methods", "standard", "--hp", "lend.k=8"], "not in --methods"),
        (["run", "--device", "cuda:7"], "--device"),
        (["run", "--no-such-flag"], "unrecognized arguments"),
        (["table", "--results", "/nonexistent/dir"], "no such directory"),
        (["noise", "--noise", "pair:0.45", "--out", "/nonexistent/dir/labels.npy"], "does not exist"),
        (["noise", "--noise", "asym:0.3", "--dataset", "digits", "--seed", "x"], "invalid int value"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, fragment, capsys, tmp_path, monkeypatch):
    if "cuda:7" in args:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    if args[0] == "run":
        args = args + ["--results", str(results)] + ([] if "--epochs" in args else ["--epochs", "2"])
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even an empty results dir


def test_errors_come_without_traceback_from_the_installed_command(tmp_path):
    bench = Path(sys.executable).with_name("bench")
    command = [str(bench)] if bench.exists() else [sys.executable, "-m", "noisybench.bench.cli"]
    proc = subprocess.run(command + ["run", "--noise", "sym:1.5", "--results", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "sym:1.5" in proc.stderr


def test_run_prints_progress_and_table_then_skips_on_rerun(capsys, tmp_path):
    args = ["run", "--methods", "standard", "--noise", "sym:0.4", "--seeds", "2", "--epochs", "3",
            "--results", str(tmp_path), "--device", "cpu"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "[1/2] standard" in out and "[2/2] standard" in out
    assert "| standard" in out and "sym:0.4 Best" in out and "n = 2 seeds" in out
    code, out, err = run_cli(args, capsys)
    assert code == 0
    assert "2 of 2 trials already done" in out and "[1/2]" not in out
    assert "| standard" in out


def test_seed_ranges_select_the_right_trials(capsys, tmp_path):
    from noisybench.bench.sweep import parse_seeds

    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("3-5") == [3, 4, 5]
    code, out, _ = run_cli(["run", "--seeds", "4-5", "--epochs", "2", "--results", str(tmp_path)], capsys)
    assert code == 0
    from noisybench.results.store import TrialStore

    assert sorted(t.read_spec()["spec"]["seed"] for t in TrialStore(tmp_path).trials()) == [4, 5]


def test_methods_and_noise_are_a_product(capsys, tmp_path):
    from noisybench.bench.sweep import SweepRequest, build_specs

    specs = build_specs(SweepRequest(methods="standard", noise="sym:0.4,pair:0.45,clean", seeds="2"))
    assert [(s.noise, s.seed) for s in specs] == [
        ("sym:0.4", 0), ("sym:0.4", 1), ("pair:0.45", 0), ("pair:0.45", 1), ("clean", 0), ("clean", 1)]


def test_noise_command_writes_labels_and_prints_rates(capsys, tmp_path):
    out_file = tmp_path / "labels.npy"
    code, out, err = run_cli(["noise", "--dataset", "digits", "--noise", "pair:0.45", "--seed", "0",
                              "--out", str(out_file)], capsys)
    assert code == 0, err
    labels = np.load(out_file)
    assert labels.dtype == np.int64 and labels.shape == (1257,)
    assert "realised" in out.lower()
    import noisybench.datasets as datasets
    import noisybench.noise as noise

    again = noise.apply_noise(noise.parse_noise("pair:0.45"), datasets.load("digits"), 0)
    assert np.array_equal(labels, again.labels)
    # The written file feeds back in as a noise spec.
    code, _, err = run_cli(["run", "--noise", f"file:{out_file}", "--epochs", "2", "--results",
                            str(tmp_path / "r")], capsys)
    assert code == 0, err


def test_list_names_every_registry(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for word in ("methods:", "standard", "datasets:", "digits", "models:", "resnet18", "preact_resnet18",
                 "protocols:", "quick", "lend-paper", "noise types:", "sym", "pair", "asym"):
        assert word in out


def test_another_datasets_package_does_not_matter(capsys, monkeypatch, tmp_path):
    """noisybench installs nothing under the bare name `datasets` (it is noisybench.datasets), so a
    foreign top-level `datasets` (Hugging Face's, in most ML environments) neither shadows it nor is
    shadowed by it; .ci/coexistence.sh checks the same with the real package and the built wheel."""
    fake = tmp_path / "datasets"
    fake.mkdir()
    (fake / "__init__.py").write_text("def load_dataset(*args):\n    return 'the other library'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "datasets", raising=False)
    import datasets

    assert datasets.load_dataset() == "the other library"
    code, out, err = run_cli(["list"], capsys)
    assert code == 0 and "digits" in out and not err
    assert datasets.load_dataset() == "the other library"
