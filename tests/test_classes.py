"""Per-class test accuracy: recorded by the trainer every epoch, tabulated by `bench classes`
beside each class's realised noise (flip rate, outvoted or not)."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from noisybench.bench.cli import main
from noisybench.bench.trainer.evaluate import balanced_accuracy, per_class_accuracy, per_class_hits
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.spec import TrialSpec
from noisybench.noise.report import class_noise
from noisybench.results.classes import load_class_accuracy
from noisybench.results.store import TrialStore

from helpers import finish_trial


def test_class_noise_flip_rates_and_outvoted_classes_from_the_count_matrix():
    empirical = [[50, 30, 20],  # clean label keeps the majority
                 [45, 40, 15],  # another label outnumbers the clean one
                 [0, 35, 35]]   # a tie with the clean label counts as outvoted
    flip, outvoted = class_noise(empirical)
    assert flip == pytest.approx([0.5, 0.6, 0.5])
    assert outvoted == [False, True, True]
    flip, outvoted = class_noise([[10, 0], [0, 0]])  # a class with no training sample
    assert flip[0] == 0.0 and math.isnan(flip[1]) and outvoted == [False, False]


def test_per_class_accuracy_and_balanced_accuracy_on_hand_built_predictions():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 3])
    predicted = torch.tensor([0, 0, 0, 1, 1, 0, 3])
    logits = torch.nn.functional.one_hot(predicted, 4).float()
    hits, counts = per_class_hits(logits, labels, 4)
    assert hits.tolist() == [3, 1, 0, 1] and counts.tolist() == [4, 2, 0, 1]
    accuracy = per_class_accuracy(hits, counts)
    assert accuracy[[0, 1, 3]].tolist() == [0.75, 0.5, 1.0] and math.isnan(accuracy[2])
    # Balanced accuracy skips the class without samples: (0.75 + 0.5 + 1) / 3.
    assert balanced_accuracy(logits, labels, 4).item() == pytest.approx(0.75)


def test_trainer_records_per_class_test_accuracy_consistent_with_test_acc(tmp_path):
    spec = TrialSpec(dataset="digits", method="standard", noise="pair:0.45", seed=0, protocol="quick", epochs=2)
    run_trial(spec, tmp_path, device="cpu")
    trial = TrialStore(tmp_path).trial(spec)
    test_counts = np.bincount(np.array(_digits_test_labels()), minlength=10)
    for line in trial.read_metrics():
        per_class = np.array(line["test_acc_per_class"])
        assert per_class.shape == (10,) and ((0 <= per_class) & (per_class <= 1)).all()
        # Weighted by the test set's class sizes, the per-class accuracies give test_acc back.
        assert (per_class * test_counts).sum() / test_counts.sum() == pytest.approx(line["test_acc"], abs=1e-6)
    frame = load_class_accuracy(tmp_path)
    assert len(frame) == 10 and set(frame["class"]) == set(range(10))
    flip, outvoted = class_noise(trial.read_spec()["noise"]["empirical"])
    assert frame.sort_values("class")["flip"].tolist() == pytest.approx(flip)
    assert frame.sort_values("class")["outvoted"].tolist() == outvoted


def _digits_test_labels():
    import noisybench.datasets as datasets

    return datasets.load("digits").test_labels


# A hand-made store: two seeds, two methods, 3 classes; seed 1 outvotes class 2.
EMPIRICAL = {0: [[8, 2, 0], [0, 7, 3], [4, 0, 6]], 1: [[9, 1, 0], [0, 6, 4], [6, 0, 4]]}
PER_CLASS = {("standard", 0): [0.9, 0.8, 0.5], ("standard", 1): [0.8, 0.6, 0.4],
             ("lend", 0): [1.0, 0.9, 0.6], ("lend", 1): [0.9, 0.7, 0.2]}


def write_store(root, with_per_class=True, empirical=EMPIRICAL):
    for (method, seed), accuracy in PER_CLASS.items():
        spec = TrialSpec(dataset="digits", method=method, noise="pair:0.45", seed=seed, protocol="quick")
        path = root / spec.dirname
        path.mkdir(parents=True)
        record = {"spec": spec.to_json(), "hash": spec.hash, "hparams": {},
                  "noise": {"realised_rate": 0.3, "empirical": empirical[seed]}}
        (path / "spec.json").write_text(json.dumps(record))
        with open(path / "metrics.jsonl", "w") as f:
            for epoch in range(1, 13):  # the first two epochs fall outside the last 10
                line = {"epoch": epoch, "test_acc": float(np.mean(accuracy))}
                if with_per_class:
                    line["test_acc_per_class"] = accuracy if epoch > 2 else [0.0, 0.0, 0.0]
                f.write(json.dumps(line) + "\n")
        finish_trial(path)


def test_bench_classes_tabulates_last_accuracy_per_class_and_splits_outvoted_classes(tmp_path, capsys):
    write_store(tmp_path)
    assert main(["classes", "--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ") and "Class" not in line}
    # Columns: Flipped %, Outvoted in, then methods (standard first).
    assert rows["0"] == ["15.0", "0/2", "85.00", "95.00"]
    assert rows["2"] == ["50.0", "1/2", "45.00", "40.00"]  # flips 0.4 and 0.6; a tie 6:4 outvotes in seed 1
    # Kept their majority: seed 0 classes 0-2, seed 1 classes 0-1, averaged per seed, then over seeds.
    standard_kept = np.mean([np.mean([0.9, 0.8, 0.5]), np.mean([0.8, 0.6])]) * 100
    lend_kept = np.mean([np.mean([1.0, 0.9, 0.6]), np.mean([0.9, 0.7])]) * 100
    assert rows["classes that kept their majority"][2:] == [f"{standard_kept:.2f}", f"{lend_kept:.2f}"]
    assert rows["outvoted classes"][2:] == ["40.00 (n=1)", "20.00 (n=1)"]
    assert "noise pair:0.45" in text and "mean over 2 seed(s)" in text


def test_bench_classes_leaves_out_the_outvoted_row_when_no_class_is_outvoted(tmp_path, capsys):
    EMPIRICAL_SPARED = {0: [[8, 2, 0], [0, 7, 3], [4, 0, 6]], 1: [[9, 1, 0], [0, 6, 4], [3, 0, 7]]}
    write_store(tmp_path, empirical=EMPIRICAL_SPARED)
    assert main(["classes", "--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| classes that kept their majority" in text and "outvoted classes" not in text

    assert main(["classes", "--results", str(tmp_path), "--format", "csv", "--methods", "lend"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(frame.columns) == ["dataset", "protocol", "noise", "method", "seed", "class", "last", "flip",
                                   "outvoted"]
    assert set(frame["method"]) == {"lend"} and len(frame) == 6


def test_bench_classes_errors_are_one_line_with_exit_2(tmp_path, capsys):
    write_store(tmp_path / "old", with_per_class=False)
    assert main(["classes", "--results", str(tmp_path / "old")]) == 2
    assert "records per-class test accuracy" in capsys.readouterr().err
    assert main(["classes", "--results", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    write_store(tmp_path / "new")
    assert main(["classes", "--results", str(tmp_path / "new"), "--noise", "sym:0.4"]) == 2
    error = capsys.readouterr().err
    assert "sym:0.4 has no finished trial" in error and len(error.strip().splitlines()) == 1


def test_bench_report_has_the_per_class_tables(tmp_path):
    write_store(tmp_path / "runs")
    assert main(["report", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md"), "--tsne", "none"]) == 0
    page = (tmp_path / "r.md").read_text()
    assert "## Accuracy per class" in page
    assert "| outvoted classes" in page and "40.00 (n=1)" in page
