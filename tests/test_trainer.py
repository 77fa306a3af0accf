"""The shared trainer and the trial store: determinism, resume, failures, the done marker."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import epoch_metrics, run_until_killed

from noisybench.bench.launch import run_inline
from noisybench.bench.trainer.data import random_crop_flip
from noisybench.bench.trainer.setup import setup_trial
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.spec import TrialSpec
from noisybench.results.aggregate import load_trials
from noisybench.results.store import DONE, FAILED, INCOMPLETE, TrialStore

EPOCHS = 6


def tiny_spec(**changes) -> TrialSpec:
    fields = dict(dataset="digits", method="standard", noise="sym:0.4", seed=0, protocol="quick", epochs=EPOCHS)
    fields.update(changes)
    return TrialSpec(**fields)


def test_same_spec_twice_gives_identical_metrics(tmp_path):
    spec = tiny_spec()
    run_trial(spec, tmp_path / "a", device="cpu")
    run_trial(spec, tmp_path / "b", device="cpu")
    a = epoch_metrics(tmp_path / "a", spec)
    b = epoch_metrics(tmp_path / "b", spec)
    assert len(a) == EPOCHS
    assert a == b


def test_other_seed_gives_other_metrics(tmp_path):
    run_trial(tiny_spec(seed=0), tmp_path, device="cpu")
    run_trial(tiny_spec(seed=1), tmp_path, device="cpu")
    assert epoch_metrics(tmp_path, tiny_spec(seed=0)) != epoch_metrics(tmp_path, tiny_spec(seed=1))


def test_killed_trial_is_never_counted_and_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    spec = tiny_spec()
    run_trial(spec, tmp_path / "whole", device="cpu")
    whole = epoch_metrics(tmp_path / "whole", spec)

    run_until_killed(spec, tmp_path / "cut", monkeypatch, epoch=3)
    trial = TrialStore(tmp_path / "cut").trial(spec)
    assert trial.state == INCOMPLETE
    assert len(trial.read_metrics()) == 3 and trial.checkpoint_file.exists()
    assert load_trials(tmp_path / "cut").empty  # an incomplete trial never reaches a table

    summary = run_trial(spec, tmp_path / "cut", device="cpu")
    assert summary.resumed_from == 3
    assert trial.state == DONE
    assert epoch_metrics(tmp_path / "cut", spec) == whole


def test_metric_lines_written_after_the_checkpoint_are_dropped_on_resume(tmp_path, monkeypatch):
    """A kill between an epoch's metrics line and its checkpoint must not duplicate the epoch."""
    spec = tiny_spec()
    run_trial(spec, tmp_path / "whole", device="cpu")
    whole = epoch_metrics(tmp_path / "whole", spec)

    run_until_killed(spec, tmp_path / "cut", monkeypatch, epoch=2)
    trial = TrialStore(tmp_path / "cut").trial(spec)
    # Simulate an epoch line that made it to disk although its checkpoint did not.
    trial.append_metrics({"epoch": 3, "test_acc": 0.0, "train_loss": 0.0})
    run_trial(spec, tmp_path / "cut", device="cpu")
    assert epoch_metrics(tmp_path / "cut", spec) == whole


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import noisybench.methods.standard as standard

    original = standard.Standard.train_step

    def explodes_on_seed_1(self, batch, epoch):
        if self.ctx.seed == setup_seed_1:
            raise RuntimeError("boom")
        return original(self, batch, epoch)

    specs = [tiny_spec(seed=0), tiny_spec(seed=1), tiny_spec(seed=2)]
    setup_seed_1 = setup_trial(specs[1], torch.device("cpu")).method.ctx.seed
    monkeypatch.setattr(standard.Standard, "train_step", explodes_on_seed_1)
    lines = []
    counts = run_inline(specs, tmp_path, device="cpu", echo=lines.append)
    assert counts == {"done": 2, "failed": 1}
    store = TrialStore(tmp_path)
    assert [store.state(s) for s in specs] == [DONE, FAILED, DONE]
    failed = store.trial(specs[1]).read_failed()
    assert failed["error"] == "RuntimeError: boom" and "Traceback" in failed["traceback"]
    assert any("FAILED" in line and "boom" in line for line in lines)
    assert sorted(load_trials(tmp_path)["seed"]) == [0, 2]

    # A rerun skips the done trials and retries the failed one from scratch.
    monkeypatch.setattr(standard.Standard, "train_step", original)
    lines.clear()
    counts = run_inline(specs, tmp_path, device="cpu", echo=lines.append)
    assert lines[0].startswith("2 of 3 trials already done")
    assert store.state(specs[1]) == DONE and counts["failed"] == 0


def test_non_finite_loss_fails_the_trial_visibly(tmp_path, monkeypatch):
    import noisybench.methods.standard as standard

    original = standard.Standard.train_step

    def nan_loss(self, batch, epoch):
        out = original(self, batch, epoch)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(standard.Standard, "train_step", nan_loss)
    summary = run_trial(tiny_spec(), tmp_path, device="cpu")
    assert summary.state == "failed" and "non-finite training loss" in summary.error


def test_done_marker_and_spec_record(tmp_path):
    spec = tiny_spec()
    run_trial(spec, tmp_path, device="cpu")
    trial = TrialStore(tmp_path).trial(spec)
    done = trial.read_done()
    record = trial.read_spec()
    assert done["state"] == DONE and done["epochs"] == EPOCHS
    assert TrialSpec.from_json(record["spec"]) == spec
    assert record["recipe"]["epochs"] == EPOCHS and record["noise"]["realised_rate"] > 0.3
    assert not trial.checkpoint_file.exists()  # finished trials keep no resume state
    line = trial.read_metrics()[0]
    assert {"epoch", "lr", "train_loss", "test_acc", "seconds"} <= set(line)
    assert line["epoch"] == 1


def test_spec_hash_is_stable_and_names_the_directory():
    a, b = tiny_spec(), tiny_spec()
    assert a.hash == b.hash and a.dirname == b.dirname
    assert tiny_spec(seed=1).hash != a.hash
    assert tiny_spec(hparams=(("x", "1"),)).hash != a.hash
    assert TrialSpec.from_json(json.loads(json.dumps(a.to_json()))) == a


def test_random_crop_flip_matches_pad_then_crop():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(images, g, padding=2)
    g = torch.Generator().manual_seed(0)
    offsets = torch.randint(0, 5, (2, 2), generator=g)
    flips = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        oy, ox = offsets[i].tolist()
        expected = padded[i, :, oy:oy + 4, ox:ox + 4]
        if flips[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)


def test_validation_split_is_shared_by_methods_of_a_seed():
    from noisybench.bench.trainer.data import split_validation

    a_train, a_val = split_validation(100, 0.1, ("digits", "sym:0.4", 0))
    b_train, b_val = split_validation(100, 0.1, ("digits", "sym:0.4", 0))
    c_train, c_val = split_validation(100, 0.1, ("digits", "sym:0.4", 1))
    assert np.array_equal(a_val, b_val) and len(a_val) == 10
    assert not np.array_equal(a_val, c_val)
    assert sorted(np.concatenate([a_train, a_val]).tolist()) == list(range(100))


def test_a_trial_trained_with_another_recipe_is_neither_skipped_nor_resumed(tmp_path, capsys):
    """The directory hashes the spec, not the recipe its protocol resolves to: a trial stored by a
    noisybench whose protocol differed must not be counted (or resumed) as if it were alike."""
    from noisybench.bench.cli import main

    args = ["run", "--methods", "standard", "--noise", "sym:0.4", "--seeds", "1", "--epochs", "2",
            "--results", str(tmp_path)]
    assert main(args) == 0
    spec = tiny_spec(epochs=2)
    trial = TrialStore(tmp_path).trial(spec)
    assert main(args) == 0 and "1 of 1 trials already done" in capsys.readouterr().out  # unchanged: skipped
    record = trial.read_spec()
    record["recipe"]["lr"] = 0.1  # as if the quick protocol had used another learning rate
    trial.spec_file.write_text(json.dumps(record))
    metrics_before = trial.metrics_file.read_text()
    assert main(args) == 2
    error = capsys.readouterr().err
    assert str(trial.path) in error and "lr: 0.1 -> 0.0005" in error and len(error.strip().splitlines()) == 1
    assert trial.metrics_file.read_text() == metrics_before  # nothing run
    (trial.path / "done.json").unlink()  # an incomplete one is not resumed either
    assert main(args) == 2
