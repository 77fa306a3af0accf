"""Common random numbers: every method and hyperparameter value of (dataset, model, seed) starts from
the same weights and sees the same batches, an --hp value hashes by its value and not its spelling,
and trials seeded by noisybench 0.1's scheme are recognised and never averaged with today's."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from noisybench.bench.cli import main
from noisybench.bench.sweep import SweepRequest, build_specs
from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.errors import BenchError
from noisybench.core.seeding import CURRENT_SEEDING, LEGACY_SEEDING
from noisybench.core.spec import TrialSpec
from noisybench.methods.registry import build_hparams, canonical_overrides

OLD_STORE = Path(__file__).parent / "fixtures" / "store_v0_1_0"
CPU = torch.device("cpu")


def specs(methods: str, *hp: str, seeds: str = "1") -> list[TrialSpec]:
    return build_specs(SweepRequest(methods=methods, noise="sym:0.4", seeds=seeds, hp=hp, epochs=2))


def first_weights(spec: TrialSpec) -> list[dict[str, torch.Tensor]]:
    """Each network's whole initial state (every tensor, not its first layer alone)."""
    method = setup_trial(spec, CPU).method
    return [{k: v.detach().clone() for k, v in net.state_dict().items()} for net in method.networks()]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_default_value_given_or_respelt_is_the_same_trial():
    plain, = specs("gce")
    assert specs("gce", "gce.q=0.7") == [plain]
    assert specs("gce", "gce.q=0.70") == [plain]
    assert specs("gce", "gce.q=7e-1") == [plain]
    yes, = specs("gce", "gce.truncated=yes")
    assert specs("gce", "gce.truncated=true") == [yes] == specs("gce", "gce.truncated=ON")
    assert yes.hparams == (("truncated", "true"),) and yes.hash != plain.hash


def test_a_grid_of_respelt_values_trains_each_value_once():
    grid = specs("gce", "gce.q=0.5,0.50,0.7")
    assert [s.hparams for s in grid] == [(("q", "0.5"),), ()]


def test_canonical_text_is_the_typed_value():
    hp = build_hparams("gce", {"q": "1e-1", "start_prune": "40", "truncated": "1"})
    assert canonical_overrides(hp) == (("q", "0.1"), ("start_prune", "40"), ("truncated", "true"))
    assert canonical_overrides(build_hparams("gce", {"start_prune": "none"})) == ()


def test_every_method_and_value_of_a_seed_starts_from_the_same_weights():
    standard, gce, gce_q5, coteaching = specs("standard,gce,coteaching", "gce.q=0.7,0.5")
    reference = first_weights(standard)[0]
    for spec in (gce, gce_q5, coteaching):
        assert same(first_weights(spec)[0], reference), spec.label()
    # The i-th network is its own draw, the same for every two-network method.
    net2 = first_weights(coteaching)[1]
    assert not same(net2, reference)
    jocor, = specs("jocor")
    assert same(first_weights(jocor)[1], net2)
    other_seed, = specs("standard", seeds="2-2")
    assert not same(first_weights(other_seed)[0], reference)


def test_every_method_of_a_seed_sees_the_same_batches_and_augmentation():
    a, b = build_specs(SweepRequest(methods="standard,lend", noise="sym:0.4", seeds="0-0", epochs=2,
                                    protocol="quick"))
    first, second = Trainer(setup_trial(a, CPU)), Trainer(setup_trial(b, CPU))
    for epoch in (0, 1):
        assert all(torch.equal(x, y) for x, y in zip(first.batch_order(epoch), second.batch_order(epoch)))
    assert not torch.equal(first.batch_order(0)[0], first.batch_order(1)[0])
    g1, g2 = first.generator("augment", 0), second.generator("augment", 0)
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))


def test_a_methods_own_randomness_stays_its_own():
    standard, lend = specs("standard,lend")
    assert setup_trial(standard, CPU).method.ctx.seed != setup_trial(lend, CPU).method.ctx.seed


def test_new_specs_record_the_scheme_and_old_ones_keep_their_hash():
    spec, = specs("standard")
    assert spec.seeding == CURRENT_SEEDING and spec.to_json()["seeding"] == CURRENT_SEEDING
    old = TrialSpec.from_json({k: v for k, v in spec.to_json().items() if k != "seeding"})
    assert old.seeding == LEGACY_SEEDING and "seeding" not in old.to_json()
    assert old.hash != spec.hash  # a rerun under today's scheme never lands in a 0.1 trial's directory


def test_an_old_seeding_trial_is_refused_by_the_trainer():
    spec, = specs("standard")
    old = TrialSpec.from_json({k: v for k, v in spec.to_json().items() if k != "seeding"})
    with pytest.raises(BenchError, match="seeding scheme 1.*rerun the sweep"):
        setup_trial(old, CPU)


def test_a_store_mixing_both_schemes_keeps_the_old_trials_apart(tmp_path, capsys):
    store = tmp_path / "runs"
    shutil.copytree(OLD_STORE, store)
    assert main(["run", "--methods", "standard", "--noise", "sym:0.4", "--seeds", "2", "--epochs", "12",
                 "--results", str(store)]) == 0
    during_run = capsys.readouterr().err
    assert main(["table", "--results", str(store), "--noise", "sym:0.4"]) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("| standard") or
            line.startswith("| coteaching")]
    assert sorted(r.split("|")[1].strip() for r in rows) == [
        "coteaching (0.1 seeding)", "standard", "standard (0.1 seeding)"]
    # Said once per process, by whichever command read the mixed store first.
    assert (during_run + captured.err).count("8 trials were seeded by noisybench 0.1's scheme") == 1


def test_a_value_equal_to_what_the_trial_fills_in_is_dropped_too():
    """ELR fills beta and lam per noise (its official configs; pair and asym take the asymmetric
    row 0.9, 1, sym the symmetric 0.7, 3): giving those values is the same trial, giving another is not."""
    pair = dict(methods="elr", noise="pair:0.35", seeds="1", epochs=2)
    plain, = build_specs(SweepRequest(**pair))
    assert build_specs(SweepRequest(**pair, hp=("elr.beta=0.9", "elr.lam=1"))) == [plain]
    other, = build_specs(SweepRequest(**pair, hp=("elr.beta=0.7",)))
    assert other.hparams == (("beta", "0.7"),)
    # on sym noise the filled row is (0.7, 3), so beta=0.7 is the default there
    sym = dict(methods="elr", noise="sym:0.4", seeds="1", epochs=2)
    assert build_specs(SweepRequest(**sym, hp=("elr.beta=0.7",))) == build_specs(SweepRequest(**sym))


def test_the_per_class_table_keeps_the_old_seeding_apart_too(tmp_path, capsys):
    """A trial of today beside a 0.1-seeded copy of itself: the per-class table (bench classes,
    the report) must show them as two methods, as bench table does, not one cell of 20 rows."""
    import json

    from helpers import finish_trial

    from noisybench.results.classes import load_class_accuracy

    store = tmp_path / "runs"
    assert main(["run", "--methods", "standard", "--noise", "sym:0.4", "--seeds", "1", "--epochs", "12",
                 "--results", str(store)]) == 0
    today, = [p for p in store.iterdir() if p.is_dir()]
    record = json.loads((today / "spec.json").read_text())
    del record["spec"]["seeding"]  # as noisybench 0.1 wrote it
    record["hash"] = TrialSpec.from_json(record["spec"]).hash
    old = store / TrialSpec.from_json(record["spec"]).dirname
    old.mkdir()
    (old / "spec.json").write_text(json.dumps(record))
    shutil.copy(today / "metrics.jsonl", old / "metrics.jsonl")
    finish_trial(old)
    frame = load_class_accuracy(store)
    assert frame.groupby("method").size().to_dict() == {"standard": 10, "standard (0.1 seeding)": 10}
