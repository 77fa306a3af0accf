"""Me-Momentum and Deep Self-Learning: their pure rules on hand-built inputs, and the trainer
support they need (validation split, train subsets, rounds, epoch budget, early stop, resume)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from noisybench.bench.cli import main
from noisybench.bench.trainer.data import split_validation
from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.setup import setup_trial
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.spec import TrialSpec
from noisybench.methods.me_momentum import confident_set, inner_lr_factor, n_add_rule
from noisybench.methods.self_learning import density_and_diversity, elect_prototypes, relabel_by_prototypes
from noisybench.results.aggregate import load_trials
from noisybench.results.store import TrialDir, TrialStore
from noisybench.results.tables import to_csv, to_markdown

# Small Me-Momentum trials: 4 protocol epochs -> rounds of 2 epochs, one outer loop, at most two
# inner rounds: outer epochs 1-2, inner round 1 epochs 3-4, inner round 2 epochs 5-6, then stop.
MM_HP = (("max_inner_loop", "3"), ("max_outer_loop", "1"))


def mm_spec(**changes) -> TrialSpec:
    fields = dict(dataset="digits", method="me_momentum", noise="sym:0.4", seed=0, protocol="quick", epochs=4,
                  hparams=MM_HP)
    fields.update(changes)
    return TrialSpec(**fields)


def lines_of(root, spec) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "seconds"} for m in TrialStore(root).trial(spec).read_metrics()]


# --------------------------------------------------------------------------------------
# Me-Momentum's rules
# --------------------------------------------------------------------------------------
def test_n_add_rule_stops_at_the_twentieth_epoch_without_improvement():
    # Epoch 1 keeps 60.0%; then a flat 60.0: n_add grows 0.1 per epoch (by repeated addition, as
    # main.py) and exceeds 2 after the 20th miss, i.e. at epoch 21.
    kept, n_add, stopped_at = 0.0, 0.0, None
    for epoch in range(1, 40):
        keep, n_add, stop = n_add_rule(60.0, kept, n_add)
        if keep:
            kept = 60.0
        if stop:
            stopped_at = epoch
            break
    assert stopped_at == 21


def test_n_add_rule_needs_more_than_kept_plus_n_add_and_resets_on_improvement():
    kept, n_add = 60.0, 0.0
    for _ in range(5):  # five misses: n_add = 0.5 (to float rounding)
        keep, n_add, stop = n_add_rule(59.0, kept, n_add)
        assert not keep and not stop
    assert n_add == pytest.approx(0.5)
    keep, n_add_after, _ = n_add_rule(60.4, kept, n_add)  # better than 60, not better than 60.5
    assert not keep and n_add_after == pytest.approx(0.6)
    keep, n_add_after, stop = n_add_rule(60.6, kept, n_add)
    assert keep and n_add_after == 0.0 and not stop


def test_confident_set_is_prediction_equals_noisy_label_among_candidates_without_threshold():
    logits = torch.tensor([[2.0, 1.0, 0.0],   # predicts 0
                           [0.0, 0.1, 0.0],   # predicts 1 with a tiny margin: still confident
                           [0.0, 0.0, 5.0],   # predicts 2
                           [3.0, 0.0, 0.0],   # predicts 0
                           [0.0, 4.0, 0.0]])  # predicts 1
    noisy = torch.tensor([0, 1, 1, 0, 1])
    candidates = torch.tensor([True, True, True, True, False])  # sample 4 is validation
    assert confident_set(logits, noisy, candidates).tolist() == [True, True, False, True, False]


def test_inner_rounds_drop_the_lr_at_40_and_80_percent_of_the_round():
    factors = [inner_lr_factor(e, 100) for e in range(100)]
    assert factors[:40] == [1.0] * 40  # main.py MultiStepLR([40, 80], 0.1)
    assert factors[40:80] == [pytest.approx(0.1)] * 40
    assert factors[80:] == [pytest.approx(0.01)] * 20
    assert [inner_lr_factor(e, 50) for e in (19, 20, 39, 40)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


# --------------------------------------------------------------------------------------
# Deep Self-Learning's rules
# --------------------------------------------------------------------------------------
def test_density_and_diversity_on_a_hand_built_similarity_matrix():
    sims = torch.tensor([[1.0, 0.9, 0.8, 0.1],
                         [0.9, 1.0, 0.7, 0.2],
                         [0.8, 0.7, 1.0, 0.3],
                         [0.1, 0.2, 0.3, 1.0]])
    # 16 entries sorted: 1 1 1 1 .9 .9 .8 .8 ...; position int(0.4*16) = 6 -> S_c = 0.8.
    rho, eta = density_and_diversity(sims)
    # a: +1 (self) +1 (.9) 0 (.8) -1 (.1); b: +1 +1 -1 -1; c: 0 -1 +1 -1; d: -1 -1 -1 +1.
    assert rho.tolist() == [1.0, 0.0, -1.0, -2.0]
    # a is densest: min of its row; b: its similarity to a; c: max(.8, .7); d: max(.1, .2, .3).
    assert eta.tolist() == pytest.approx([0.1, 0.9, 0.8, 0.3])


def unit_vectors(degrees) -> torch.Tensor:
    radians = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([radians.cos(), radians.sin()], dim=1).float()


def test_prototypes_are_the_dense_and_diverse_samples_never_the_outlier_first():
    # Cluster A around 0 degrees (7 samples), cluster B around 60 (3), one outlier at 200.
    # 121 similarities; S_c (position 48) is the 13-degree pair -- every sample of A within 13
    # degrees of 0 counts as close to it.  0 is the densest sample (rho 3); every other A sample
    # is within 10 degrees of a denser one (eta > cos 10 > 0.95).  B's centre is denser than its
    # two members, and only A samples are denser than it (eta = cos 56 < 0.95).  The outlier is
    # the least dense of all and unlike everything (eta = cos 140).
    angles = [0, -4, 4, -5, 6, 3, -9, 60, 56, 67, 200]
    features = unit_vectors(angles)
    rho, eta = density_and_diversity(features @ features.T)
    assert int(rho.argmax()) == 0 and int((rho == rho.max()).sum()) == 1
    assert int(rho.argmin()) == 10
    assert elect_prototypes(features, 1).tolist() == [0]
    assert elect_prototypes(features, 2).tolist() == [0, 7]
    # Only three samples pass the diversity test; asked for more, the rule adds the outlier last
    # (lowest density) -- with m >> p, as in the paper (m=1280, p=8), denser candidates come first.
    assert elect_prototypes(features, 8).tolist() == [0, 7, 10]
    # Scaling features does not change cosine similarities.
    assert elect_prototypes(features * torch.arange(1, 12).float()[:, None], 2).tolist() == [0, 7]


def test_relabelling_follows_the_mean_prototype_similarity_not_the_nearest_prototype():
    prototypes = torch.stack([unit_vectors([0, 90]), unit_vectors([60, 60]), unit_vectors([180, 0])])
    mask = torch.tensor([[True, True], [True, True], [True, False]])  # class 2 has one prototype
    samples = unit_vectors([85, 10, 178, 60])
    # 85 deg: class 0 mean (cos 85 + cos 5)/2 = 0.54 < class 1 cos 25 = 0.91, though its nearest
    # single prototype (90) is class 0's.  10 deg: class 0 (0.98+0.17)/2=0.58 < class 1 cos 50=0.64.
    # 178: class 2's only prototype (the masked one at 0 deg must not count).  60: class 1.
    assert relabel_by_prototypes(samples, prototypes, mask).tolist() == [1, 1, 2, 1]
    empty = torch.tensor([[True, True], [False, False], [True, False]])  # class 1 has no prototypes
    assert relabel_by_prototypes(samples, prototypes, empty).tolist() == [0, 0, 2, 0]


# --------------------------------------------------------------------------------------
# The trainer support
# --------------------------------------------------------------------------------------
def test_validation_split_is_requested_by_the_method_and_shared_by_a_seed():
    mm = setup_trial(mm_spec(), torch.device("cpu"))
    other_spec = setup_trial(mm_spec(hparams=MM_HP + (("budget_factor", "2"),)), torch.device("cpu"))
    standard = setup_trial(TrialSpec(dataset="digits", method="standard", noise="sym:0.4", seed=0,
                                     protocol="quick", epochs=4), torch.device("cpu"))
    n = mm.data.noisy.numel()
    _, expected_val = split_validation(n, 0.1, ("digits", "sym:0.4", 0))
    assert mm.data.val_idx.tolist() == expected_val.tolist() and len(expected_val) == round(0.1 * n)
    assert torch.equal(other_spec.data.val_idx, mm.data.val_idx)  # other spec, same (dataset, noise, seed)
    assert standard.data.val_idx.numel() == 0 and standard.data.train_idx.numel() == n
    _, larger = split_validation(n, 0.2, ("digits", "sym:0.4", 0))
    assert set(expected_val.tolist()) <= set(larger.tolist())


def test_training_is_restricted_to_the_methods_subset_in_a_seeded_order(one_cpu_thread):
    def trained(epochs):
        """The indices the trainer's own epochs train on, with Me-Momentum's set cut to a third."""
        trainer = Trainer(setup_trial(mm_spec(), torch.device("cpu")))
        method, data = trainer.method, trainer.data
        method.train_mask.zero_()
        method.train_mask[torch.cat([data.train_idx[::3], data.val_idx[:5]])] = True  # validation never trains
        seen, step = [], method.train_step
        method.train_step = lambda batch, epoch: seen.append(batch.index) or step(batch, epoch)
        for epoch in epochs:
            trainer.train_epoch(epoch)
        return data, torch.cat(seen)

    data, first = trained([0])
    assert sorted(first.tolist()) == sorted(data.train_idx[::3].tolist())
    assert torch.equal(first, trained([0])[1])  # seeded
    _, both = trained([0, 1])
    assert not torch.equal(both[:len(first)], both[len(first):])  # each epoch its own order


def test_me_momentum_rounds_lr_confident_sets_and_early_stop_are_reported(capsys, tmp_path):
    args = ["run", "--methods", "me_momentum", "--noise", "sym:0.4", "--seeds", "1", "--epochs", "4",
            "--hp", "me_momentum.max_outer_loop=1,me_momentum.max_inner_loop=3", "--results", str(tmp_path),
            "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = lines_of(tmp_path, mm_spec())
    assert len(lines) == 6  # 2 outer + 2 inner rounds of 2 epochs, well inside the budget of 4 x 5
    assert "stopped early at epoch 6 of its 20-epoch budget: Me-Momentum's loops ended" in out
    assert [m["phase"] for m in lines] == ["outer"] * 2 + ["inner"] * 4
    assert [m["round"] for m in lines] == [1, 1, 2, 2, 3, 3]
    # Constant lr in the outer phase; each inner round restarts at the base lr and drops at 40%.
    assert [m["lr"] for m in lines] == pytest.approx([5e-4, 5e-4, 5e-4, 5e-5, 5e-4, 5e-5])
    for m in lines:
        assert 0.0 <= m["val_balanced_acc"] <= 1.0 and "val_acc" in m
        assert {"confident_kept_fraction", "confident_label_precision", "confident_label_recall"} <= set(m)
    assert lines[0]["confident_kept_fraction"] == 1.0  # the first outer loop trains on everything
    inner = lines[2]
    assert 0.0 < inner["confident_kept_fraction"] < 1.0
    # The confident set is far cleaner than the 40%-noisy training set it comes from.
    assert inner["confident_label_precision"] > lines[0]["confident_label_precision"] + 0.1
    record = TrialStore(tmp_path).trial(mm_spec())
    assert record.read_spec()["num_val"] == 126 and record.read_spec()["epoch_budget"] == 20
    assert "stopped early at epoch 6" in record.read_done()["end_note"]
    row = load_trials(tmp_path).iloc[0]
    adopted = [m["test_acc"] for m in lines if m["own_selected"] == 1.0]
    assert (math.isnan(row["own"]) and not adopted) or row["own"] == adopted[-1]


def test_me_momentum_never_runs_past_its_budget_and_says_so(capsys, tmp_path):
    spec = mm_spec(hparams=MM_HP + (("budget_factor", "1"),))
    summary = run_trial(spec, tmp_path, device="cpu")
    assert summary.epochs == 4
    assert "stopped at its epoch budget (4 epochs" in summary.end_note
    assert "stopped at its epoch budget" in capsys.readouterr().out


def test_me_momentum_finishing_at_the_last_epoch_of_its_budget_says_so(tmp_path):
    spec = mm_spec(hparams=MM_HP + (("budget_factor", "1.5"),))  # its rule ends it at epoch 6 of 6
    summary = run_trial(spec, tmp_path, device="cpu")
    assert summary.epochs == 6
    assert summary.end_note.startswith("finished at epoch 6, the last of its budget: Me-Momentum's loops ended")


class Interrupted(BaseException):
    """Stands in for a kill: the trial is left incomplete with its checkpoint."""


def test_me_momentum_resumed_mid_round_reproduces_the_uninterrupted_trial(tmp_path, monkeypatch):
    spec = mm_spec()
    run_trial(spec, tmp_path / "whole", device="cpu")
    original = Trainer.train_epoch

    def dies_in_epoch_5(self, epoch, *args, **kwargs):  # the first epoch of inner round 2
        if epoch == 4:
            raise Interrupted()
        return original(self, epoch, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_5)
    with pytest.raises(Interrupted):
        run_trial(spec, tmp_path / "cut", device="cpu")
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert run_trial(spec, tmp_path / "cut", device="cpu").resumed_from == 4
    assert lines_of(tmp_path / "cut", spec) == lines_of(tmp_path / "whole", spec)


def test_a_stopped_me_momentum_killed_before_done_json_resumes_into_training_nothing(tmp_path, monkeypatch):
    spec = mm_spec()
    whole = run_trial(spec, tmp_path / "whole", device="cpu")
    # Every 4th epoch checkpointed: the stop at epoch 6 saves epoch 6's state all the same.
    monkeypatch.setattr(TrialDir, "mark_done", lambda self, summary: (_ for _ in ()).throw(Interrupted()))
    with pytest.raises(Interrupted):
        run_trial(spec, tmp_path / "cut", device="cpu", checkpoint_every=4)
    monkeypatch.undo()
    assert TrialStore(tmp_path / "cut").trial(spec).checkpointed_epoch() == 6
    again = run_trial(spec, tmp_path / "cut", device="cpu", checkpoint_every=4)
    assert again.resumed_from == 6 and again.end_note == whole.end_note
    assert lines_of(tmp_path / "cut", spec) == lines_of(tmp_path / "whole", spec)


def test_self_learning_warms_up_then_relabels_and_the_trainer_scores_the_corrections():
    spec = TrialSpec(dataset="digits", method="self_learning", noise="sym:0.4", seed=0, protocol="quick",
                     epochs=3, hparams=(("start_epoch", "1"),))
    trainer = Trainer(setup_trial(spec, torch.device("cpu")))
    lines = trainer.run()
    assert [(m["round"], m["phase"]) for m in lines] == [(0, "warm-up"), (1, "self-learning"), (2, "self-learning")]
    assert "corrected_acc" not in lines[0] and "relabel_changed_fraction" not in lines[0]
    data, method = trainer.data, trainer.method
    # The last epoch trained towards the current corrected labels; the trainer scored them per batch.
    expected = (method.corrected[data.train_idx] == data.clean[data.train_idx]).float().mean().item()
    assert lines[-1]["corrected_acc"] == pytest.approx(expected, abs=1e-6)
    changed = (method.corrected[data.train_idx] != data.noisy[data.train_idx]).float().mean().item()
    assert lines[-1]["relabel_changed_fraction"] == pytest.approx(changed, abs=1e-6)
    assert lines[-1]["prototypes_per_class"] <= 8
    restored = setup_trial(spec, torch.device("cpu")).method
    restored.load_state_dict(method.state_dict())
    assert restored.corrections == 2 and torch.equal(restored.corrected, method.corrected)


def test_tables_show_own_beside_selected_with_the_seeds_behind_it():
    summary = pd.DataFrame([
        dict(dataset="digits", protocol="quick", noise="sym:0.4", method="me_momentum", n=3, best_mean=95.0,
             best_std=1.0, last_mean=93.0, last_std=1.0, selected_mean=92.0, selected_std=1.0, own_mean=94.0,
             own_std=0.5, own_n=2),
        dict(dataset="digits", protocol="quick", noise="sym:0.4", method="standard", n=3, best_mean=92.0,
             best_std=1.0, last_mean=70.0, last_std=2.0, selected_mean=np.nan, selected_std=np.nan,
             own_mean=np.nan, own_std=np.nan, own_n=0),
    ])
    text = to_markdown(summary)
    assert "sym:0.4 Selected" in text and "sym:0.4 Own" in text and "Own = test accuracy" in text
    row = next(line for line in text.splitlines() if line.startswith("| me_momentum"))
    assert "94.00 ± 0.50 (n=2)" in row and "(n=3)" not in row
    assert "own_n" in to_csv(summary).splitlines()[0]
    assert "Own" not in to_markdown(summary.drop(columns=["own_mean", "own_std", "own_n"]))


def test_original_protocol_gives_me_momentum_its_own_optimiser():
    from noisybench.bench.trainer.protocols import resolve_recipe

    cifar = resolve_recipe("original", "cifar10", "me_momentum")
    assert (cifar.optimizer, cifar.lr, cifar.momentum, cifar.weight_decay, cifar.batch_size) == ("sgd", 0.01, 0.9, 1e-4, 128)
    assert cifar.schedule == "constant" and cifar.epochs == 200  # rounds of 100 epochs, as main.py's n_epoch
    digits = resolve_recipe("original", "digits", "me_momentum")
    assert (digits.model, digits.epochs, digits.optimizer) == ("mlp", 100, "sgd")
