"""Stale is not done (issue 27): a stored trial made by other code -- a part's bumped rule_version,
a noise generator that now draws other labels -- stops `bench run` in one line naming it and the
fix, `--rerun-stale` moves it aside and trains it again, and no table averages two versions.
The bumps are monkeypatched class attributes; the run is the issue's own, on digits."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import noisybench.datasets as datasets
import noisybench.noise as noise
from noisybench.bench.cli import main
from noisybench.bench.staleness import LabelFingerprints, find_stale, set_aside_stale
from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec
from noisybench.methods import get_method
from noisybench.methods.rule_versions import rule_versions
from noisybench.results.integrity import STALE_DIR
from noisybench.results.lease import TrialLease
from noisybench.results.store import TrialStore

from helpers import run_until_killed

OLD_STORE = Path(__file__).parent / "fixtures" / "store_v0_1_0"
EPOCHS = 2

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def sweep(results, *extra) -> list[str]:
    return ["run", "--methods", "standard", "--noise", "sym:0.4", "--epochs", str(EPOCHS), "--device", "cpu",
            "--results", str(results), *extra]


def resolved(specs):
    """The sweep's trials as the launchers hand them on: resolved once (bench/trainer/resolve.py)."""
    from noisybench.bench.trainer.resolve import resolve_trial

    return [resolve_trial(s) for s in specs]


def spec(seed: int = 0) -> TrialSpec:
    return TrialSpec(dataset="digits", method="standard", noise="sym:0.4", seed=seed, protocol="quick", epochs=EPOCHS)


def bump_standard(monkeypatch, to: int = 2) -> None:
    standard = get_method("standard")
    monkeypatch.setattr(standard, "rule_version", to)
    monkeypatch.setattr(standard, "rule_history", {**standard.rule_history, to: "a changed step (test)"})


def table_csv(results, capsys) -> pd.DataFrame:
    capsys.readouterr()
    assert main(["table", "--results", str(results), "--format", "csv"]) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


def test_spec_json_records_the_versions_and_the_noisy_labels_of_every_trial(tmp_path):
    assert main(sweep(tmp_path, "--noise", "sym:0.4,pair:0.35")) == 0
    digits = datasets.load("digits")
    for noise_text in ("sym:0.4", "pair:0.35"):
        trial_spec = TrialSpec(**{**spec().__dict__, "noise": noise_text})
        record = TrialStore(tmp_path).trial(trial_spec).read_spec()
        assert record["rule_versions"] == rule_versions("standard", "mlp", "digits") == \
            {"method:standard": 1, "model:mlp": 1, "dataset:digits": 1}
        drawn = noise.apply_noise(noise.parse_noise(noise_text), digits, 0)
        assert record["noise"]["labels_sha256"] == drawn.labels_sha256
        assert record["spec"] == trial_spec.to_json() and record["hash"] == trial_spec.hash  # no new hash input


def test_the_issues_done_when_a_bumped_method_is_refused_then_retrained_aside(tmp_path, monkeypatch, capsys):
    assert main(sweep(tmp_path)) == 0
    old = TrialStore(tmp_path).trial(spec())
    old_metrics = old.metrics_file.read_text()
    bump_standard(monkeypatch)

    for extra in ([], ["--dry-run"]):  # refused before anything is trained, in a run and a dry run
        capsys.readouterr()
        assert main(sweep(tmp_path, *extra)) == 2
        err = one_error_line(capsys)
        assert f"{old.path} is stale" in err and "method standard: stored version 1, code version 2" in err
        assert "--rerun-stale" in err
    assert old.metrics_file.read_text() == old_metrics and not (tmp_path / STALE_DIR).exists()

    assert main(sweep(tmp_path, "--dry-run", "--rerun-stale")) == 0
    assert "stale (method standard: stored version 1, code version 2): would be moved aside" in capsys.readouterr().out
    assert not (tmp_path / STALE_DIR).exists()  # a dry run moves nothing

    assert main(sweep(tmp_path, "--rerun-stale")) == 0
    out = capsys.readouterr().out
    assert "moved aside to" in out and "[1/1] standard" in out, out
    [aside] = (tmp_path / STALE_DIR).iterdir()  # kept, whole: nothing is deleted
    assert aside.name.startswith(old.path.name) and (aside / "metrics.jsonl").read_text() == old_metrics
    assert json.loads((aside / "spec.json").read_text()).get("rule_versions", {}).get("method:standard", 1) == 1
    assert old.read_spec()["rule_versions"]["method:standard"] == 2  # the same directory, the new code

    frame = table_csv(tmp_path, capsys)  # only the new trial: the one aside is out of the store
    assert len(frame) == 1 and frame.n[0] == 1
    assert frame.rule_versions[0] == "method:standard=2 model:mlp=1 dataset:digits=1"
    assert main(["verify", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"aside    {STALE_DIR}/{aside.name} (stale: method standard: stored version 1, code version 2)" in out
    assert main(["table", "--results", str(tmp_path), "--hparams"]) == 0
    out = capsys.readouterr().out
    assert "| every method | recipe: model" in out and "| standard" in out
    assert main(sweep(tmp_path)) == 0 and "1 of 1 trials already done" in capsys.readouterr().out


def test_a_table_never_averages_two_versions_in_one_cell(tmp_path, monkeypatch, capsys):
    assert main(sweep(tmp_path)) == 0  # seed 0 under version 1
    bump_standard(monkeypatch)
    assert main(sweep(tmp_path, "--seeds", "1-1")) == 0  # seed 1 under version 2, the same cell
    capsys.readouterr()
    for command in (["table"], ["table", "--format", "csv"], ["plot", "curves", "--out", str(tmp_path / "c.png")]):
        assert main([*command, "--results", str(tmp_path)]) == 2
        err = one_error_line(capsys)
        assert "holds trials of two versions of method standard (version 1:" in err and "version 2:" in err
        assert "--rerun-stale" in err
    assert main(sweep(tmp_path, "--seeds", "2", "--rerun-stale")) == 0  # seed 0 retrained under version 2
    assert table_csv(tmp_path, capsys).n.tolist() == [2]


def test_an_unfinished_stale_trial_is_not_resumed_under_the_new_code(tmp_path, monkeypatch, capsys):
    from noisybench.bench.trainer.trial import run_trial

    run_until_killed(spec(), tmp_path, monkeypatch, epoch=1)  # epoch 1 done under version 1
    bump_standard(monkeypatch)
    assert main(sweep(tmp_path)) == 2 and "code version 2" in one_error_line(capsys)
    # A worker that skips the sweep's check (its controller ran older code) still does not resume it.
    summary = run_trial(spec(), tmp_path, device="cpu")
    assert summary.state == "failed" and "was started under other code" in summary.error
    assert "--rerun-stale" in summary.error


def test_an_unfinished_stale_trial_is_moved_aside_and_trained_from_the_start(tmp_path, monkeypatch, capsys):
    run_until_killed(spec(), tmp_path, monkeypatch, epoch=1)
    bump_standard(monkeypatch)
    assert main(sweep(tmp_path, "--rerun-stale")) == 0
    done = json.loads((tmp_path / spec().dirname / "done.json").read_text())
    assert done["resumed_from"] == 0 and done["epochs"] == EPOCHS
    assert len(list((tmp_path / STALE_DIR).iterdir())) == 1


def test_a_changed_noise_generator_is_caught_by_the_labels_fingerprint(tmp_path, monkeypatch, capsys):
    assert main(sweep(tmp_path)) == 0
    import noisybench.noise.apply as apply

    drawn_before = apply.noise_generator
    monkeypatch.setattr(apply, "noise_generator", lambda name, text, seed: drawn_before(name, text, seed + 1000))
    capsys.readouterr()
    assert main(sweep(tmp_path)) == 2  # nobody bumped anything
    err = one_error_line(capsys)
    assert "its noisy labels differ from those the noise code draws for sym:0.4, seed 0 today" in err
    assert "--rerun-stale" in err
    assert main(sweep(tmp_path, "--rerun-stale")) == 0
    now = noise.apply_noise(noise.parse_noise("sym:0.4"), datasets.load("digits"), 0).labels_sha256
    assert TrialStore(tmp_path).trial(spec()).read_spec()["noise"]["labels_sha256"] == now


def test_the_labels_are_drawn_once_per_noise_and_seed(tmp_path, monkeypatch):
    assert main(["run", "--methods", "standard,gce", "--noise", "sym:0.4", "--seeds", "2", "--epochs", "1",
                 "--device", "cpu", "--results", str(tmp_path)]) == 0
    import noisybench.noise as noise_package

    drawn = []
    real = noise_package.apply_noise
    monkeypatch.setattr(noise_package, "apply_noise", lambda *a, **k: drawn.append(a[2]) or real(*a, **k))
    specs = [TrialSpec(dataset="digits", method=m, noise="sym:0.4", seed=s, protocol="quick", epochs=1)
             for m in ("standard", "gce") for s in (0, 1)]
    assert find_stale(resolved(specs), tmp_path, LabelFingerprints()) == []
    assert sorted(drawn) == [0, 1]  # 4 trials, 2 seeds: each seed's labels drawn once


def test_a_stale_trial_another_process_holds_is_left_to_it(tmp_path, monkeypatch, capsys):
    assert main(sweep(tmp_path)) == 0
    bump_standard(monkeypatch)
    trial = TrialStore(tmp_path).trial(spec())
    holder = TrialLease(trial.path)
    assert holder.acquire()
    said = []
    try:
        set_aside_stale(resolved([spec()]), tmp_path, said.append, rerun=True)
    finally:
        holder.release()
    assert len(said) == 1 and "another process holds it: left to it" in said[0]
    assert trial.metrics_file.exists() and not (tmp_path / STALE_DIR).exists()


def test_the_local_launcher_refuses_a_stale_store_before_submitting(tmp_path, monkeypatch, capsys):
    assert main(sweep(tmp_path)) == 0
    bump_standard(monkeypatch)
    capsys.readouterr()
    assert main(sweep(tmp_path, "--launcher", "local")) == 2
    assert "method standard: stored version 1, code version 2" in one_error_line(capsys)
    from noisybench.slurm.submission import load_submissions

    assert load_submissions(tmp_path) == []  # nothing submitted


def test_an_old_store_without_the_new_fields_reads_and_is_not_stale(tmp_path, capsys):
    store = tmp_path / "old"
    shutil.copytree(OLD_STORE, store)
    specs = [TrialSpec.from_json(json.loads(p.read_text())["spec"]) for p in sorted(store.glob("*/spec.json"))]
    assert all("rule_versions" not in json.loads(p.read_text()) for p in store.glob("*/spec.json"))
    assert len(specs) == 8 and find_stale(resolved(specs), store, LabelFingerprints()) == []  # read as version 1 throughout
    set_aside_stale(resolved(specs), store, print, rerun=False)  # no refusal
    assert main(["verify", "--results", str(store)]) == 0
    assert "8 finished trials verified" in capsys.readouterr().out
    assert main(["table", "--results", str(store), "--hparams", "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(frame.method) == {"standard", "coteaching"} and "recipe.lr" in set(frame.setting)


def test_the_refusal_counts_the_other_stale_trials(tmp_path, monkeypatch):
    assert main(sweep(tmp_path, "--seeds", "2")) == 0
    bump_standard(monkeypatch)
    with pytest.raises(BenchError, match=r"s0_.* is stale.*\(and 1 more stale trial\(s\)\)"):
        set_aside_stale(resolved([spec(0), spec(1)]), tmp_path, print, rerun=False)
