"""The resolution step (bench/trainer/resolve.py): every spelling of one configuration is one trial,
every default is filled before hashing, and nothing after the sweep resolves again."""
from __future__ import annotations

import dataclasses
import json

import pytest

from noisybench.bench.cli import main
from noisybench.bench.sweep import SweepRequest, build_specs, build_trials
from noisybench.methods import build_hparams, get_method
from noisybench.methods.base import TrialFacts
from noisybench.methods.registry import method_names
from noisybench.results.store import file_sha256

# Defaults that were filled inside the methods' constructors, after the trial id was hashed, and the
# value each takes at sym:0.4 on digits (10 classes) under quick's 100 epochs.
SPELT_OUT_DEFAULTS = {
    "coteaching": "forget_rate=0.4",
    "jocor": "forget_rate=0.4",
    "sigua": "forget_rate=0.4,sigua.sigua_rate=0.3,sigua.sigua_scale=0.01,sigua.script=cifar10",
    "elr_plus": "coef_step=0,elr_plus.weight_labels_by_target=false",
    "gce": "start_prune=40",
    "self_learning": "start_epoch=10",
    "me_momentum": "round_epochs=50",
}
# Fields where None is itself a setting, not a default filled per trial.
NONE_IS_A_SETTING = {("me_momentum", "val_round_decimals")}


def spelt_out(method: str) -> tuple[str, ...]:
    first, *rest = SPELT_OUT_DEFAULTS[method].split(",")
    return (f"{method}.{first}", *rest)


@pytest.mark.parametrize("method", sorted(SPELT_OUT_DEFAULTS))
def test_a_default_spelt_out_is_the_same_trial(method):
    plain = build_specs(SweepRequest(methods=method, noise="sym:0.4", seeds="2"))
    given = build_specs(SweepRequest(methods=method, noise="sym:0.4", seeds="2", hp=(",".join(spelt_out(method)),)))
    assert plain == given and all(spec.hparams == () for spec in plain)
    # A value other than the default is another trial, named by that value alone.
    (other,) = build_specs(SweepRequest(methods=method, noise="sym:0.4", seeds="1", hp=(OTHER_VALUE[method],)))
    assert other.hparams == ((OTHER_VALUE[method].split(".")[1].split("=")[0], OTHER_VALUE[method].split("=")[1]),)
    assert other.hash != plain[0].hash


OTHER_VALUE = {"coteaching": "coteaching.forget_rate=0.2", "jocor": "jocor.forget_rate=0.2",
               "sigua": "sigua.sigua_scale=0.001", "elr_plus": "elr_plus.coef_step=5", "gce": "gce.start_prune=3",
               "self_learning": "self_learning.start_epoch=3", "me_momentum": "me_momentum.round_epochs=3"}


def test_every_registered_method_fills_every_default_before_hashing():
    for name in method_names():
        for facts in (TrialFacts("digits", "quick", "sym", 0.4, 10, 100),
                      TrialFacts("cifar100", "lend-paper", "pair", 0.45, 100, 200)):
            hparams = get_method(name).resolve(build_hparams(name), facts).hparams
            unfilled = [f.name for f in dataclasses.fields(hparams)
                        if getattr(hparams, f.name) is None and (name, f.name) not in NONE_IS_A_SETTING]
            assert not unfilled, f"{name} leaves {unfilled} to be filled after the trial is hashed"


def test_a_default_that_depends_on_another_value_follows_it():
    # SIGUA's sigua_rate follows the forget rate (0.4 below 0.35, else 0.3): given forget_rate=0.2,
    # the trial trains with 0.4 and is named by the forget rate alone (its id as before this step).
    (trial,) = build_trials(SweepRequest(methods="sigua", noise="sym:0.4", seeds="1", hp=("sigua.forget_rate=0.2",)))
    assert trial.hparams == (("forget_rate", "0.2"),)
    assert (trial.filled_hparams.forget_rate, trial.filled_hparams.sigua_rate) == (0.2, 0.4)
    (same,) = build_specs(SweepRequest(methods="sigua", noise="sym:0.4", seeds="1",
                                       hp=("sigua.forget_rate=0.2,sigua.sigua_rate=0.4",)))
    assert same == trial.spec


def test_dry_run_shows_one_trial_and_a_second_spelling_trains_nothing(tmp_path, capsys):
    base = ["run", "--methods", "coteaching,sigua,elr_plus,gce", "--noise", "sym:0.4", "--seeds", "1",
            "--epochs", "2", "--results", str(tmp_path)]
    spelt = ["--hp", ",".join(spelt_out("coteaching")), "--hp", ",".join(spelt_out("sigua")),
             "--hp", ",".join(spelt_out("elr_plus")), "--hp", "gce.start_prune=40"]
    assert main(base + spelt + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 trials in") and "[" not in out  # one trial each, no spelt-out default in its name
    assert main(base) == 0
    capsys.readouterr()
    assert main(base + spelt) == 0
    out = capsys.readouterr().out
    assert "4 of 4 trials already done" in out and "trials run in" not in out
    assert len(list(tmp_path.glob("digits_*"))) == 4


def test_a_store_written_before_the_defaults_were_filled_still_counts_as_done(tmp_path, capsys):
    # Before this step spec.json recorded forget_rate None (the constructor filled it from the noise
    # rate): the same trial, trained with the same value, not one with other hyperparameters.
    args = ["run", "--methods", "coteaching", "--noise", "sym:0.4", "--seeds", "1", "--epochs", "2",
            "--results", str(tmp_path)]
    assert main(args) == 0
    (spec_file,) = tmp_path.glob("digits_coteaching_*/spec.json")
    record = json.loads(spec_file.read_text())
    assert record["hparams"]["forget_rate"] == 0.4 and "forget_rate" in record["hparams_filled"]
    record["hparams"]["forget_rate"] = None
    del record["hparams_filled"]
    spec_file.write_text(json.dumps(record))
    done_file = spec_file.parent / "done.json"  # as that version's done.json sealed it
    done_file.write_text(json.dumps({**json.loads(done_file.read_text()), "spec_sha256": file_sha256(spec_file)}))
    capsys.readouterr()
    assert main(args) == 0
    assert "1 of 1 trials already done" in capsys.readouterr().out


def test_nothing_after_the_sweep_resolves_again(tmp_path, monkeypatch):
    from noisybench.bench import launch
    from noisybench.bench.trainer import resolve
    from noisybench.methods import registry

    trials = build_trials(SweepRequest(methods="coteaching,me_momentum", noise="sym:0.4", seeds="1", epochs=2))

    def no_second_resolution(*args, **kwargs):
        raise AssertionError("resolved again after the sweep")

    monkeypatch.setattr(registry, "resolve_hparams", no_second_resolution)
    monkeypatch.setattr(resolve, "resolve_hparams", no_second_resolution)
    # The method's constructor is handed resolved hyperparameters; it must not need to resolve them.
    monkeypatch.setattr(get_method("coteaching"), "resolve",
                        classmethod(lambda cls, hparams, facts: _unchanged(hparams)))
    monkeypatch.setattr(get_method("me_momentum"), "resolve",
                        classmethod(lambda cls, hparams, facts: _unchanged(hparams)))
    counts = launch.run_inline(trials, tmp_path)
    assert counts == {"done": 2, "failed": 0}
    records = {r["spec"]["method"]: r for r in (json.loads(p.read_text()) for p in tmp_path.glob("*/spec.json"))}
    assert records["coteaching"]["hparams"]["forget_rate"] == 0.4
    assert records["me_momentum"]["epoch_budget"] == 10 and records["me_momentum"]["hparams"]["round_epochs"] == 1


def _unchanged(hparams):
    from noisybench.methods.base import Resolution

    assert all(v is not None for k, v in dataclasses.asdict(hparams).items() if k != "val_round_decimals")
    return Resolution(hparams)


def test_verify_names_a_trial_of_an_older_store_named_by_a_spelt_out_default(tmp_path, capsys):
    # An older store trained coteaching[forget_rate=0.4] at sym:0.4 under that name; today it is coteaching.
    from noisybench.bench.launch import run_inline
    from noisybench.core.spec import TrialSpec

    (trial,) = build_trials(SweepRequest(methods="coteaching", noise="sym:0.4", seeds="1", epochs=2))
    old = dataclasses.replace(trial.spec, hparams=(("forget_rate", "0.4"),))
    run_inline([old], tmp_path, echo=lambda line: None)
    assert (tmp_path / old.dirname / "done.json").exists() and old.dirname != trial.dirname
    capsys.readouterr()
    assert main(["verify", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"renamed  {old.dirname} spells out coteaching's default forget_rate=0.4" in out
    assert f"the same configuration is {trial.dirname}, where `bench run` trains it anew" in out
    assert isinstance(old, TrialSpec)
