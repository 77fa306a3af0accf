"""Row labels with every suffix a table can print -- --hp overrides ``[k=v]``, the old seeding
scheme's `` (0.1 seeding)``, a plugin version's `` {pkg==v}`` and their combinations -- reach the
published reference row, ``--methods``, the row order, the claims and the curves' colours.

Nothing reads a label back (results/labels.py): the method's registry name and overrides travel
as data columns beside the label.  These stores produce each suffix the way a real store does.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from noisybench.bench.cli import main
from noisybench.core.seeding import CURRENT_SEEDING, LEGACY_SEEDING
from noisybench.core.spec import TrialSpec
from noisybench.results.aggregate import load_epochs, load_trials, summarize
from noisybench.results.labels import (
    HPARAMS,
    METHOD_NAME,
    PROTOCOL_NAME,
    label_data,
    method_label,
    plugin_version_mark,
    protocol_label,
    with_label_data,
)
from noisybench.results.reference import compare_with_reference, load_reference, unmatched_cells
from noisybench.results.style import BUILTIN_COLORS

from helpers import finish_trial

OLD_STORE = Path(__file__).parent / "fixtures" / "store_v0_1_0"
BOOTSTRAP = "noisybench-bootstrap==0.1.0"
# LEND paper, Table 1, CIFAR-100 sym:0.4 (results/reference/lend_paper_tables.csv).
PUBLISHED_BEST = {"standard": 43.75, "coteaching": 40.53}


def write_trial(root, method, seed, *, seeding=CURRENT_SEEDING, plugin=None, hparams=(), best=50.0, last=45.0,
                dataset="cifar100", noise="sym:0.4", protocol="lend-paper", epochs=None, metrics=None):
    """A finished trial whose Best is ``best`` and Last ``last`` (percent, plus 0.1 per seed)."""
    spec = TrialSpec(dataset=dataset, method=method, noise=noise, seed=seed, protocol=protocol, hparams=hparams,
                     seeding=seeding, plugin=plugin, epochs=epochs)
    path = root / spec.dirname
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"spec": spec.to_json(), "hash": spec.hash}))
    with open(path / "metrics.jsonl", "w") as f:
        for epoch, acc in enumerate([best] + [last] * 10, 1):
            line = {"epoch": epoch, "test_acc": (acc + 0.1 * seed) / 100, "train_loss": 1.0, "seconds": 0.1}
            f.write(json.dumps({**line, **(metrics or {})}) + "\n")
    finish_trial(path)


FORGET = (("forget_rate", "0.2"),)
# row label -> the trials behind it: (method, seeding, plugin, hparams)
ROWS = {
    "standard": ("standard", CURRENT_SEEDING, None, ()),
    "standard (0.1 seeding)": ("standard", LEGACY_SEEDING, None, ()),
    "coteaching": ("coteaching", CURRENT_SEEDING, None, ()),
    "coteaching (0.1 seeding)": ("coteaching", LEGACY_SEEDING, None, ()),
    "coteaching[forget_rate=0.2] (0.1 seeding) {built-in}": ("coteaching", LEGACY_SEEDING, None, FORGET),
    f"coteaching[forget_rate=0.2] (0.1 seeding) {{{BOOTSTRAP}}}": ("coteaching", LEGACY_SEEDING, BOOTSTRAP, FORGET),
    f"coteaching[forget_rate=0.2] {{{BOOTSTRAP}}}": ("coteaching", CURRENT_SEEDING, BOOTSTRAP, FORGET),
    "coteaching[forget_rate=0.2] {built-in}": ("coteaching", CURRENT_SEEDING, None, FORGET),
}


@pytest.fixture
def store(tmp_path):
    """Two seeds of every row of ROWS on CIFAR-100 sym:0.4 under the LEND paper's recipe."""
    for method, seeding, plugin, hparams in ROWS.values():
        for seed in range(2):
            write_trial(tmp_path, method, seed, seeding=seeding, plugin=plugin, hparams=hparams)
    return tmp_path


def table_rows(text: str) -> list[str]:
    return [line.split("|")[1].strip() for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| Method")]


def comparison_csv(store, capsys, *argv) -> pd.DataFrame:
    assert main(["table", "--results", str(store), "--compare-paper", "--format", "csv", *argv]) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)


def test_the_store_labels_each_row_with_its_suffixes_and_carries_the_data_beside_it(store):
    summary = summarize(load_trials(store))
    assert set(summary["method"]) == set(ROWS)
    for label, (method, _, _, hparams) in ROWS.items():
        row = summary[summary["method"] == label].iloc[0]
        overrides = ",".join(f"{k}={v}" for k, v in hparams)
        assert (row[METHOD_NAME], row[HPARAMS], row[PROTOCOL_NAME]) == (method, overrides, "lend-paper")
        assert row["n"] == 2


def test_the_table_shows_every_suffixed_row_with_its_method(store, capsys):
    assert main(["table", "--results", str(store)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert sorted(rows) == sorted(ROWS)
    assert rows[:2] == ["standard", "standard (0.1 seeding)"]  # every row of the baseline first
    assert main(["table", "--results", str(store), "--methods", "coteaching"]) == 0
    coteaching_rows = [label for label, (method, *_rest) in ROWS.items() if method == "coteaching"]
    assert sorted(table_rows(capsys.readouterr().out)) == sorted(coteaching_rows)
    assert main(["table", "--results", str(store), "--methods", "coteaching (0.1 seeding)"]) == 0
    assert table_rows(capsys.readouterr().out) == ["coteaching (0.1 seeding)"]  # a full label chooses one row


def test_compare_paper_finds_the_published_row_of_every_suffixed_label(store, capsys):
    frame = comparison_csv(store, capsys)
    best = frame[frame.metric == "best"].set_index("method")
    assert set(best.index) == set(ROWS)  # no label is left unmatched
    for label, (method, _, _, hparams) in ROWS.items():
        row = best.loc[label]
        assert row.published == PUBLISHED_BEST[method]
        assert row.difference == pytest.approx(50.05 - PUBLISHED_BEST[method], abs=1e-4)
        if hparams:  # another recipe: shown, never judged
            assert row.verdict == "not judged" and "hyperparameter overrides" in row.protocol_differs
        else:  # the published recipe: the seeding mark or a plugin mark does not stop the verdict
            assert row.verdict != "not judged" and row.protocol_differs == ""
    assert main(["table", "--results", str(store), "--compare-paper"]) == 0
    text = capsys.readouterr().out
    assert "No published number for" not in text
    assert "| coteaching (0.1 seeding) (Co-teaching) " in text  # the paper's name beside ours


def test_compare_paper_with_methods_keeps_every_row_of_the_method(store, capsys):
    frame = comparison_csv(store, capsys, "--methods", "standard")
    assert set(frame.method) == {"standard", "standard (0.1 seeding)"}


def test_an_old_store_beside_new_trials_keeps_its_rows_apart_and_chosen_by_name(tmp_path, capsys):
    """noisybench 0.1's own store (tests/fixtures/store_v0_1_0) and one trial seeded today."""
    store = tmp_path / "runs"
    shutil.copytree(OLD_STORE, store)
    write_trial(store, "coteaching", 0, dataset="digits", protocol="quick", epochs=12, best=90.0, last=89.0)
    assert main(["table", "--results", str(store)]) == 0
    out = capsys.readouterr()
    assert table_rows(out.out) == ["standard (0.1 seeding)", "coteaching", "coteaching (0.1 seeding)"]
    assert "seeded by noisybench 0.1's scheme" in out.err
    assert main(["table", "--results", str(store), "--methods", "standard", "--format", "csv"]) == 0
    assert set(pd.read_csv(io.StringIO(capsys.readouterr().out)).method) == {"standard (0.1 seeding)"}
    assert main(["table", "--results", str(store), "--compare-paper"]) == 0  # digits: nothing published
    assert "Published numbers: none for the measured cells" in capsys.readouterr().out


def test_claims_judge_each_seeding_scheme_in_its_own_row(tmp_path, capsys):
    """Trials of both schemes on one seed are two cells, not one cell with a seed counted twice."""
    lines = {"label_precision": 0.9, "kept_fraction": 0.6}
    for seeding in (LEGACY_SEEDING, CURRENT_SEEDING):
        for seed in range(2):
            write_trial(tmp_path, "coteaching", seed, seeding=seeding, dataset="digits", noise="sym:0.4",
                        protocol="quick", metrics=lines)
    assert main(["claims", "--results", str(tmp_path), "--format", "csv"]) == 0
    claims = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(claims.method) == {"coteaching", "coteaching (0.1 seeding)"}


def test_curves_draw_every_row_of_a_method_in_its_colour(store, tmp_path, capsys):
    from noisybench.results.plots import plot_curves

    epochs = load_epochs(store)
    figure = plot_curves(epochs, ["test_acc"])
    colours = {line.get_gid().split("|")[0]: line.get_color() for line in figure.axes[0].lines if line.get_gid()}
    assert set(colours) == set(ROWS)
    for label, (method, *_rest) in ROWS.items():
        assert colours[label] == BUILTIN_COLORS[method]
    out = tmp_path / "c.png"
    assert main(["plot", "curves", "--results", str(store), "--methods", "standard", "--out", str(out)]) == 0
    assert out.exists()


def test_a_label_is_made_from_the_data_it_carries():
    spec = {"method": "coteaching", "protocol": "quick", "hparams": {"num_gradual": 5, "forget_rate": 0.2},
            "epochs": 3}
    assert method_label(spec) == "coteaching[forget_rate=0.2,num_gradual=5]"
    assert protocol_label(spec) == "quick[epochs=3]"
    assert label_data(spec) == {METHOD_NAME: "coteaching", HPARAMS: "forget_rate=0.2,num_gradual=5",
                                PROTOCOL_NAME: "quick"}
    assert plugin_version_mark(BOOTSTRAP) == " {noisybench-bootstrap==0.1.0}"
    assert plugin_version_mark(None) == plugin_version_mark("") == " {built-in}"


def test_a_summary_built_by_hand_holds_plain_rows():
    """A summary of one's own numbers, without the data columns: each label is a registry name."""
    summary = pd.DataFrame([dict(dataset="cifar100", protocol="lend-paper", noise="sym:0.4", method="coteaching",
                                 n=3, best_mean=40.0, best_std=0.3, last_mean=38.0, last_std=0.4)])
    filled = with_label_data(summary)
    assert (filled[METHOD_NAME].iloc[0], filled[HPARAMS].iloc[0], filled[PROTOCOL_NAME].iloc[0]) == (
        "coteaching", "", "lend-paper")
    pairs = compare_with_reference(summary, load_reference())
    assert set(pairs.published) == {40.53, 38.40} and unmatched_cells(summary, load_reference()) == []
