"""Aggregation and tables on a small hand-made store, against hand-computed numbers."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from noisybench.core.spec import TrialSpec
from noisybench.results.aggregate import load_trials, summarize
from noisybench.results.tables import to_csv, to_latex, to_markdown

from helpers import finish_trial


def write_trial(root, method, noise, seed, accs, state="done", hparams=()):
    spec = TrialSpec(dataset="digits", method=method, noise=noise, seed=seed, protocol="quick", hparams=hparams)
    path = root / spec.dirname
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"spec": spec.to_json(), "hash": spec.hash}))
    with open(path / "metrics.jsonl", "w") as f:
        for epoch, acc in enumerate(accs, 1):
            f.write(json.dumps({"epoch": epoch, "test_acc": acc, "train_loss": 1.0, "seconds": 0.1}) + "\n")
    if state == "done":
        finish_trial(path)
    elif state == "failed":
        (path / "failed.json").write_text(json.dumps({"state": "failed", "error": "x", "traceback": ""}))


# 12 epochs each: Best is the max, Last the mean of the last 10 (epochs 3..12).
SEED0 = [0.10, 0.90, 0.80, 0.80, 0.80, 0.80, 0.80, 0.70, 0.70, 0.70, 0.70, 0.70]
SEED1 = [0.20, 0.60, 0.95, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60]


@pytest.fixture
def store(tmp_path):
    write_trial(tmp_path, "standard", "sym:0.4", 0, SEED0)
    write_trial(tmp_path, "standard", "sym:0.4", 1, SEED1)
    write_trial(tmp_path, "standard", "sym:0.4", 2, [0.99] * 12, state="incomplete")  # never counted
    write_trial(tmp_path, "standard", "sym:0.4", 3, [0.99] * 12, state="failed")  # never counted
    write_trial(tmp_path, "gce", "sym:0.4", 0, [0.8] * 12)
    write_trial(tmp_path, "standard", "pair:0.45", 0, [0.4] * 12)
    return tmp_path


def test_best_and_last_by_hand(store):
    trials = load_trials(store)
    assert len(trials) == 4  # the incomplete and the failed trials are left out
    row0 = trials[(trials.method == "standard") & (trials.noise == "sym:0.4") & (trials.seed == 0)].iloc[0]
    assert row0.best == pytest.approx(0.90)
    assert row0.last == pytest.approx((0.80 * 5 + 0.70 * 5) / 10)
    assert row0.best_epoch == 2


def test_mean_and_sample_std_over_seeds(store):
    summary = summarize(load_trials(store)).set_index(["noise", "method"])
    row = summary.loc[("sym:0.4", "standard")]
    best = [90.0, 95.0]
    last = [75.0, 63.5]  # seed 1: (0.95 + 9 * 0.60) / 10
    assert row.n == 2
    assert row.best_mean == pytest.approx(92.5)
    assert row.best_std == pytest.approx(pd.Series(best).std(ddof=1))  # 3.5355..
    assert row.best_std == pytest.approx(3.5355339, rel=1e-6)
    assert row.last_mean == pytest.approx(69.25)
    assert row.last_std == pytest.approx(pd.Series(last).std(ddof=1))
    assert row.last_std == pytest.approx(8.1317279, rel=1e-6)


def test_csv_contract(store):
    frame = pd.read_csv(io.StringIO(to_csv(summarize(load_trials(store)))))
    # rule_versions (issue 27) comes last, so that scripts reading the columns before it by position still work.
    assert list(frame.columns) == ["dataset", "protocol", "noise", "method", "n", "best_mean", "best_std",
                                   "last_mean", "last_std", "rule_versions"]
    assert len(frame) == 3
    row = frame[(frame.method == "standard") & (frame.noise == "sym:0.4")].iloc[0]
    assert row.best_mean == pytest.approx(92.5) and row.last_std == pytest.approx(8.1317, abs=1e-4)
    # These hand-made records name no recipe (so no network) and no versions: version 1 of each part.
    assert row.rule_versions == "method:standard=1 dataset:digits=1"


def test_markdown_table_layout_and_bold_best(store):
    text = to_markdown(summarize(load_trials(store)))
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["Method", "sym:0.4 Best", "sym:0.4 Last", "pair:0.45 Best", "pair:0.45 Last"]
    standard = [c.strip() for c in lines[2].strip("|").split("|")]
    assert standard[0] == "standard"  # standard is the first row
    assert standard[1].startswith("**92.50 ± 3.54")  # best in its column
    assert standard[2] == "69.25 ± 8.13 (n=2)"  # gce's Last (80.00) is the column's best
    gce = [c.strip() for c in lines[3].strip("|").split("|")]
    assert gce[0] == "gce" and gce[2] == "**80.00 (n=1)**"
    assert "n = seeds per cell" in text  # n differs between cells, so it is shown per cell
    assert "(n=1)" in text


def test_latex_is_booktabs(store):
    text = to_latex(summarize(load_trials(store)))
    assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text
    assert "$\\pm$" in text and "\\textbf{" in text


def test_hparam_overrides_get_their_own_row(tmp_path):
    write_trial(tmp_path, "standard", "sym:0.4", 0, [0.5] * 12)
    write_trial(tmp_path, "standard", "sym:0.4", 1, [0.6] * 12, hparams=(("x", "1"),))
    methods = set(summarize(load_trials(tmp_path))["method"])
    assert methods == {"standard", "standard[x=1]"}


def test_render_formats():
    empty = summarize(pd.DataFrame())
    assert list(empty.columns)[:4] == ["dataset", "protocol", "noise", "method"]
    assert set(["markdown", "latex", "csv"]) <= set(__import__("noisybench.results.tables", fromlist=["FORMATS"]).FORMATS)
