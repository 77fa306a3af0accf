"""Input the sweep used to accept and then fail on inside a trial (or with a traceback): each is
now one line on stderr, exit status 2, and nothing written."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import noisybench.datasets as datasets
import noisybench.noise as noise
from noisybench.bench.cli import main
from noisybench.bench.sweep import SweepRequest, build_specs, parse_hp
from noisybench.core.errors import BenchError
from noisybench.datasets.registry import Dataset
from noisybench.methods import build_hparams, get_method
from noisybench.methods.base import TrialFacts
from noisybench.methods.registry import _convert, method_names
from noisybench.noise.human import HUMAN_LABEL_SETS

SELECTION_METHODS = ("coteaching", "jocor", "sigua")


def refused(args: list[str], capsys, *fragments: str) -> str:
    """Run ``bench ARGS``; assert exit 2 and one stderr line holding every fragment; return it."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} missing from {err!r}"
    return err


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current directory: what is in it after a refused command was put there by the test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def label_file(workdir):
    """A valid file: noise for digits (its clean training labels): a noise with no known rate."""
    path = workdir / "labels.npy"
    noise.save_labels(path, np.asarray(datasets.load("digits").train_labels, dtype=np.int64))
    return path


# --------------------------------------------------------------------------------------
# 1. A selection method under noise of unknown rate needs --hp METHOD.forget_rate
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", SELECTION_METHODS)
def test_unknown_noise_rate_without_forget_rate_is_refused_before_any_trial(method, label_file, workdir, capsys):
    results = workdir / "results"
    refused(["run", "--methods", f"standard,{method}", "--noise", f"sym:0.2,file:{label_file}", "--epochs", "1",
             "--results", str(results), "--device", "cpu"], capsys,
            method, f"file:{label_file}", f"--hp {method}.forget_rate=0.2")
    assert not results.exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["labels.npy"]


@pytest.mark.parametrize("method", SELECTION_METHODS)
def test_a_given_forget_rate_or_a_known_noise_rate_is_enough(method, label_file):
    specs = build_specs(SweepRequest(methods=method, noise=f"file:{label_file}", seeds="1", epochs=1,
                                     hp=(f"{method}.forget_rate=0.2",)))
    assert len(specs) == 1
    for text in ("clean", "sym:0.4", "pair:0.45", "asym:0.3", "inst:0.2"):
        assert len(build_specs(SweepRequest(methods=method, noise=text, seeds="1", epochs=1))) == 1


def test_resolve_fills_nothing_by_default_and_the_forget_rate_for_selection_methods():
    file_noise = TrialFacts("digits", "quick", "file", None, 10, 100)
    for name in method_names():
        if name not in SELECTION_METHODS:
            get_method(name).resolve(build_hparams(name), file_noise)  # no error
    for name in SELECTION_METHODS:
        resolved = get_method(name).resolve(build_hparams(name), TrialFacts("digits", "quick", "sym", 0.4, 10, 100))
        assert resolved.hparams.forget_rate == 0.4 and "forget_rate" in resolved.sources
        with pytest.raises(BenchError, match=rf"--hp {name}\.forget_rate=0\.2"):
            get_method(name).resolve(build_hparams(name), file_noise)
    # JoCoR halves the noise rate under asym noise (algorithm/jocor.py); a given rate stays.
    jocor, asym = get_method("jocor"), TrialFacts("digits", "quick", "asym", 0.4, 10, 100)
    assert jocor.resolve(build_hparams("jocor"), asym).hparams.forget_rate == pytest.approx(0.2)
    assert jocor.resolve(build_hparams("jocor", {"forget_rate": "0.3"}), asym).hparams.forget_rate == 0.3


def test_a_kind_without_a_rate_must_say_its_nominal_rate():
    # A new kind must say its sweep-time rate, or its selection-method errors come back mid-sweep.
    from noisybench.noise.registry import TAKES_NOTHING, register_kind

    with pytest.raises(ValueError, match="nominal_rate"):
        register_kind("no_rate_said", takes=TAKES_NOTHING, syntax="no_rate_said", description="x")


@pytest.mark.parametrize("text", ["clean", "sym:0.4", "pair:0.45", "asym:0.3", "inst:0.2", "file"])
def test_the_sweep_rate_is_the_rate_the_trial_sees(text, label_file):
    digits = datasets.load("digits")
    spec = noise.parse_noise(f"file:{label_file}" if text == "file" else text)
    assert noise.nominal_rate(spec, digits) == noise.apply_noise(spec, digits, 0).nominal_rate


def test_the_sweep_rate_of_real_and_human_noise():
    own = (np.arange(40) % 4).astype(np.int64)
    toy = Dataset(name="animal10n", train_images=np.zeros((40, 1, 2, 2), np.uint8), train_labels=None,
                  test_images=np.zeros((2, 1, 2, 2), np.uint8), test_labels=np.zeros(2, np.int64),
                  class_names=tuple(f"c{i}" for i in range(4)), own_noisy_labels=own, own_noise_rate=0.08)
    real = noise.parse_noise("real")
    assert noise.nominal_rate(real, toy) == noise.apply_noise(real, toy, 0).nominal_rate == 0.08
    for (kind, variant), label_set in HUMAN_LABEL_SETS.items():
        spec = noise.parse_noise(f"{kind}:{variant}")
        assert noise.nominal_rate(spec, toy) == label_set.published_rate


# --------------------------------------------------------------------------------------
# 2. Float hyperparameters must be finite
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment", ["sigua.sigua_scale=nan", "sigua.sigua_scale=inf", "sigua.sigua_scale=-inf",
                                        "sigua.sigua_scale=1e999", "sigua.forget_rate=nan", "gce.q=NaN"])
def test_non_finite_floats_are_refused(assignment, workdir, capsys):
    method = assignment.split(".")[0]
    refused(["run", "--methods", method, "--hp", assignment, "--epochs", "1", "--results", str(workdir / "r")],
            capsys, f"--hp {assignment}", "expected a finite float")
    assert list(workdir.iterdir()) == []


def test_every_method_parses_the_text_of_its_own_defaults():
    for name in method_names():
        fields = [f for f in dataclasses.fields(get_method(name).Hparams) if f.default is not dataclasses.MISSING]
        for f in fields:
            assert _convert(str(f.default), f.type, f"{name}.{f.name}") == f.default, (name, f.name)
        texts = {f.name: str(f.default) for f in fields}
        assert build_hparams(name, texts) == build_hparams(name), name


# --------------------------------------------------------------------------------------
# 3. --checkpoint-every below 1
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("every", ["0", "-1"])
def test_checkpoint_every_below_one_is_refused(every, workdir, capsys):
    refused(["run", "--checkpoint-every", every, "--epochs", "1", "--results", str(workdir / "r"),
             "--device", "cpu"], capsys, f"--checkpoint-every {every}", "at least 1")
    assert list(workdir.iterdir()) == []


# --------------------------------------------------------------------------------------
# 4. --results that is, or lies under, a file
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "table"])
@pytest.mark.parametrize("under", ["", "runs", "runs/deeper"])
def test_results_on_a_file_is_one_line(command, under, workdir, capsys):
    (workdir / "file.txt").write_text("not a directory\n")
    results = workdir / "file.txt" / under if under else workdir / "file.txt"
    args = [command, "--results", str(results)] + (["--epochs", "1", "--device", "cpu"] if command == "run" else [])
    err = refused(args, capsys, str(results), "not a directory", "--results")
    if under:
        assert f"lies under {workdir / 'file.txt'}" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["file.txt"]
    assert (workdir / "file.txt").read_text() == "not a directory\n"


def test_table_still_says_a_missing_results_dir_is_missing(workdir, capsys):
    refused(["table", "--results", str(workdir / "nowhere")], capsys, "no such directory")
    assert list(workdir.iterdir()) == []


# --------------------------------------------------------------------------------------
# 5. Negative seeds
# --------------------------------------------------------------------------------------
def test_noise_refuses_a_negative_seed(workdir, capsys):
    out = workdir / "labels.npy"
    refused(["noise", "--noise", "sym:0.2", "--seed", "-1", "--out", str(out)], capsys, "--seed -1", "--seed 0")
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("seeds", ["-1", "-3-5", "3--5", "-3--1"])
def test_run_refuses_negative_seed_ranges(seeds, workdir, capsys):
    refused(["run", f"--seeds={seeds}", "--epochs", "1", "--results", str(workdir / "r")], capsys, "--seeds")
    assert list(workdir.iterdir()) == []


# --------------------------------------------------------------------------------------
# 6. One METHOD.NAME given two values
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("hp", [["--hp", "gce.q=0.5", "--hp", "gce.q=0.7"], ["--hp", "gce.q=0.5,gce.q=0.7"]])
def test_a_hyperparameter_given_two_values_is_refused(hp, workdir, capsys):
    refused(["run", "--methods", "gce", *hp, "--epochs", "1", "--results", str(workdir / "r")], capsys,
            "gce.q", "=0.5", "=0.7")
    assert list(workdir.iterdir()) == []


def test_an_exact_repeat_or_other_keys_are_fine():
    assert parse_hp(["gce.q=0.5", "gce.q=0.5,gce.k=0.4"], ["gce"]) == {"gce": {"q": ["0.5"], "k": ["0.4"]}}
    assert parse_hp(["gce.q=0.5", "lend.k=8"], ["gce", "lend"]) == {"gce": {"q": ["0.5"]}, "lend": {"k": ["8"]}}
