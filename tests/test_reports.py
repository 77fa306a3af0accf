"""Figures, reports, published numbers and significance marks, on small hand-made stores.

Every plotted number is checked against an aggregate computed here, independently, from the
values written into the fake trial directories.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from noisybench.bench.cli import main
from noisybench.core.layout import FEATURE_SNAPSHOT_NAME
from noisybench.core.spec import TrialSpec
from noisybench.results.aggregate import load_epochs, load_trials, summarize
from noisybench.results.plots import (
    CURVE_PANEL_INCHES,
    DPI,
    TSNE_PANEL_INCHES,
    class_colors,
    curve_table,
    plot_curves,
    plot_tsne,
)
from noisybench.results.reference import REFERENCE_COLUMNS, compare_with_reference, load_reference, render_comparison
from noisybench.results.report import write_report
from noisybench.results.tables import (
    NOT_WORSE_MARK,
    not_significantly_worse,
    paired_not_significantly_worse,
    to_latex,
    to_markdown,
)
from noisybench.results.verdict import NOT_JUDGED

from helpers import finish_trial

RECIPE = {"model": "mlp", "optimizer": "adam", "lr": 0.0005, "batch_size": 64, "epochs": 12}


def write_trial(root, method, noise, seed, lines, state="done", protocol="quick", hparams=None):
    """A trial directory as results/store.py and the trainer (bench/trainer/) write it."""
    spec = TrialSpec(dataset="digits", method=method, noise=noise, seed=seed, protocol=protocol)
    path = root / spec.dirname
    path.mkdir(parents=True)
    record = {"spec": spec.to_json(), "hash": spec.hash, "recipe": RECIPE, "hparams": hparams or {},
              "noise": {"realised_rate": 0.4}}
    (path / "spec.json").write_text(json.dumps(record))
    with open(path / "metrics.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    if state == "done":
        finish_trial(path)
    elif state == "failed":
        (path / "failed.json").write_text(json.dumps({"state": "failed", "error": "RuntimeError: boom",
                                                      "traceback": ""}))
    return path


EPOCHS = 12
METHODS = ["standard", "lend"]
NOISES = ["sym:0.4", "pair:0.45"]
SEEDS = [0, 1, 2]


def accuracy_curve(method, noise, seed):
    """A reproducible curve per trial: standard rises then falls, lend rises and stays."""
    rng = np.random.default_rng([METHODS.index(method), NOISES.index(noise), seed])
    epochs = np.arange(1, EPOCHS + 1)
    peak = 0.9 if method == "lend" else 0.8
    shape = peak * (1 - np.exp(-epochs / 2.0))
    if method == "standard":
        shape = shape - 0.03 * np.maximum(epochs - 4, 0)
    return shape + rng.normal(0, 0.01, EPOCHS)


def diagnostic_curve(method, noise, seed, offset):
    rng = np.random.default_rng([METHODS.index(method), NOISES.index(noise), seed, offset])
    return 0.5 + 0.03 * np.arange(EPOCHS) + rng.normal(0, 0.01, EPOCHS)


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    for method in METHODS:
        for noise in NOISES:
            for seed in SEEDS:
                acc = accuracy_curve(method, noise, seed)
                lines = []
                for e in range(EPOCHS):
                    line = {"epoch": e + 1, "lr": 0.0005, "test_acc": float(acc[e]), "train_loss": 1.0 / (e + 1),
                            "seconds": 0.1}
                    if method == "lend":  # only LEND logs these, as methods/lend.py does
                        line["diluted_label_acc"] = float(diagnostic_curve(method, noise, seed, 1)[e])
                        line["model_pred_acc"] = float(diagnostic_curve(method, noise, seed, 2)[e])
                        line["label_precision"] = float(diagnostic_curve(method, noise, seed, 3)[e])
                        line["test_acc_net2"] = float(diagnostic_curve(method, noise, seed, 4)[e])
                    lines.append(line)
                write_trial(root, method, noise, seed, lines, hparams={"k": 8} if method == "lend" else {})
    write_trial(root, "standard", "sym:0.4", 7, [{"epoch": 1, "test_acc": 0.99}], state="failed")
    write_trial(root, "lend", "sym:0.4", 8, [{"epoch": 1, "test_acc": 0.99}], state="incomplete")
    return root


def expected_curve(method, noise, values=accuracy_curve):
    """Mean and sample std over the seeds, computed with numpy from the generating function."""
    runs = np.stack([values(method, noise, seed) for seed in SEEDS])
    return runs.mean(axis=0), runs.std(axis=0, ddof=1)


def png_size(path):
    with Image.open(path) as image:
        return image.size


def pixels(width_inches, height_inches):
    """The PNG size matplotlib writes for a figure of this size at the plots' DPI."""
    return (round(width_inches * DPI), round(height_inches * DPI))


# --------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------
def test_curve_table_is_the_mean_and_sample_std_over_seeds(store):
    table = curve_table(load_epochs(store), "test_acc")
    for method in METHODS:
        for noise in NOISES:
            rows = table[(table.method == method) & (table.noise == noise)].sort_values("epoch")
            mean, std = expected_curve(method, noise)
            np.testing.assert_allclose(rows["mean"], mean, rtol=1e-12)
            np.testing.assert_allclose(rows["std"], std, rtol=1e-10)
            assert set(rows["n"]) == {3}  # the failed and the incomplete trial are never counted


def test_curves_plot_the_store_numbers_in_percent_with_a_std_band(store, tmp_path):
    out = tmp_path / "curves.png"
    figure = plot_curves(load_epochs(store), ["test_acc"], out)
    assert out.stat().st_size > 10_000
    assert png_size(out) == pixels(2 * CURVE_PANEL_INCHES[0], CURVE_PANEL_INCHES[1])  # two noise panels
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_visible()}
    assert set(panels) == {"digits · sym:0.4", "digits · pair:0.45"}
    for noise in NOISES:
        ax = panels[f"digits · {noise}"]
        lines = {line.get_gid(): line for line in ax.lines}
        assert set(lines) == {"standard|test_acc", "lend|test_acc"}
        for i, method in enumerate(["standard", "lend"]):  # drawn in method order, standard first
            mean, std = expected_curve(method, noise)
            np.testing.assert_allclose(lines[f"{method}|test_acc"].get_xdata(), np.arange(1, EPOCHS + 1))
            np.testing.assert_allclose(lines[f"{method}|test_acc"].get_ydata(), 100 * mean, rtol=1e-12)
            band = ax.collections[i].get_paths()[0].vertices[:, 1]
            assert band.min() == pytest.approx(100 * (mean - std).min())
            assert band.max() == pytest.approx(100 * (mean + std).max())
    # Standard's memorisation is visible: its curve peaks early and ends lower than LEND's.
    standard = lines["standard|test_acc"].get_ydata()
    assert standard.argmax() < EPOCHS - 3 and standard[-1] < lines["lend|test_acc"].get_ydata()[-1]


def test_any_metric_several_metrics_and_pdf(store, tmp_path):
    out = tmp_path / "fig4.pdf"
    levels = {("digits", "quick", "sym:0.4"): (60.0, "noisy labels (60.0%)")}
    figure = plot_curves(load_epochs(store), ["diluted_label_acc", "model_pred_acc"], out, levels=levels)
    assert out.read_bytes()[:4] == b"%PDF" and out.stat().st_size > 5_000
    ax = next(ax for ax in figure.axes if ax.get_title() == "digits · sym:0.4")
    lines = {line.get_gid(): line for line in ax.lines}
    assert set(lines) == {"lend|diluted_label_acc", "lend|model_pred_acc", "level"}  # standard does not log them
    assert list(lines["level"].get_ydata()) == [60.0, 60.0]
    assert lines["lend|diluted_label_acc"].get_linestyle() != lines["lend|model_pred_acc"].get_linestyle()
    mean, _ = expected_curve("lend", "sym:0.4", lambda m, n, s: diagnostic_curve(m, n, s, 1))
    np.testing.assert_allclose(lines["lend|diluted_label_acc"].get_ydata(), 100 * mean, rtol=1e-12)
    loss = plot_curves(load_epochs(store), ["train_loss"], tmp_path / "loss.png")
    line = loss.axes[0].lines[0]
    assert line.get_gid().endswith("|train_loss") and line.get_ydata()[0] == pytest.approx(1.0)  # not in percent


def test_cli_curves_writes_the_file_and_rejects_an_unknown_metric(store, tmp_path, capsys):
    out = tmp_path / "precision.png"
    assert main(["plot", "curves", "--results", str(store), "--metric", "label_precision", "--out", str(out)]) == 0
    assert png_size(out) == pixels(2 * CURVE_PANEL_INCHES[0], CURVE_PANEL_INCHES[1])
    capsys.readouterr()
    assert main(["plot", "curves", "--results", str(store), "--metric", "val_acc",
                 "--out", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'val_acc' is in no finished trial" in err
    assert ("available: diluted_label_acc, label_precision, lr, model_pred_acc, seconds, test_acc, test_acc_net2, "
            "train_loss") in err
    assert not (tmp_path / "v.png").exists()
    assert main(["plot", "curves", "--results", str(store), "--out", str(tmp_path / "x.jpg")]) == 2
    assert main(["plot", "curves", "--results", str(store), "--methods", "lend", "--noise", "pair:0.45",
                 "--out", str(tmp_path / "one.png")]) == 0
    assert png_size(tmp_path / "one.png") == pixels(CURVE_PANEL_INCHES[0], CURVE_PANEL_INCHES[1])


# --------------------------------------------------------------------------------------
# t-SNE of a feature snapshot
# --------------------------------------------------------------------------------------
def write_snapshot(trial_dir, epoch, num=150, classes=3):
    """Three well-separated clusters; the noisy labels of every fifth point are shifted by one class."""
    rng = np.random.default_rng(0)
    clean = np.arange(num) % classes
    centres = rng.normal(0, 10, (classes, 16))
    features = (centres[clean] + rng.normal(0, 0.5, (num, 16))).astype(np.float16)
    noisy = clean.copy()
    noisy[::5] = (noisy[::5] + 1) % classes
    predicted = clean.copy()
    predicted[:10] = (predicted[:10] + 2) % classes
    np.savez_compressed(trial_dir / FEATURE_SNAPSHOT_NAME.format(epoch=epoch), epoch=np.int64(epoch),
                        features=features, clean=clean, noisy=noisy, predicted=predicted, has_clean=np.bool_(True),
                        in_train_split=np.ones(num, bool))
    return clean, noisy, predicted


def test_tsne_three_panels_from_a_snapshot(store, tmp_path, capsys):
    trial = next(p for p in store.iterdir() if p.name.startswith("digits_lend_sym-0.4_s0"))
    clean, noisy, predicted = write_snapshot(trial, 5)
    out = tmp_path / "tsne.png"
    assert main(["plot", "tsne", "--trial", str(trial), "--epoch", "5", "--subsample", "60", "--out", str(out)]) == 0
    assert png_size(out) == pixels(3 * TSNE_PANEL_INCHES[0], TSNE_PANEL_INCHES[1])
    assert out.stat().st_size > 10_000

    from noisybench.results.plots import load_feature_snapshot

    snapshot = load_feature_snapshot(trial, 5)
    figure, info = plot_tsne(snapshot, subsample=60, seed=0)
    expected_index = np.sort(np.random.default_rng(0).choice(150, size=60, replace=False))
    np.testing.assert_array_equal(info["index"], expected_index)
    assert info["noise_rate"] == pytest.approx(np.mean(noisy[expected_index] != clean[expected_index]))
    assert info["predicted_accuracy"] == pytest.approx(np.mean(predicted[expected_index] == clean[expected_index]))
    palette = np.array(class_colors(3))
    axes = figure.axes[:3]
    for ax, labels in zip(axes, (clean, predicted, noisy)):
        points = ax.collections[0]
        np.testing.assert_allclose(points.get_offsets(), info["embedding"])  # one embedding, three colourings
        np.testing.assert_allclose(points.get_facecolors(), palette[labels[expected_index]])
    _, again = plot_tsne(snapshot, subsample=60, seed=0)
    np.testing.assert_allclose(again["embedding"], info["embedding"])  # fixed random_state: reproducible

    capsys.readouterr()
    assert main(["plot", "tsne", "--trial", str(trial), "--epoch", "9", "--out", str(tmp_path / "n.png")]) == 2
    assert "it has epochs 5" in capsys.readouterr().err


def test_save_features_writes_snapshots_from_the_trainer(tmp_path, capsys):
    import noisybench.datasets as datasets
    import noisybench.noise as noise

    results = tmp_path / "runs"
    assert main(["run", "--methods", "standard", "--noise", "sym:0.4", "--epochs", "2", "--results", str(results),
                 "--save-features", "1,2"]) == 0
    (trial,) = list(results.iterdir())
    assert {p.name for p in trial.glob("features_e*.npz")} == {"features_e1.npz", "features_e2.npz"}
    with np.load(trial / "features_e2.npz") as snapshot:
        dataset = datasets.load("digits")
        assert snapshot["features"].shape == (len(dataset.train_labels), 256)  # the MLP's penultimate layer
        np.testing.assert_array_equal(snapshot["clean"], dataset.train_labels)
        noisy = noise.apply_noise(noise.parse_noise("sym:0.4"), dataset, 0).labels
        np.testing.assert_array_equal(snapshot["noisy"], noisy)
        assert int(snapshot["epoch"]) == 2 and snapshot["predicted"].max() < 10
    capsys.readouterr()
    assert main(["run", "--methods", "standard", "--epochs", "2", "--results", str(tmp_path / "other"),
                 "--save-features", "3"]) == 2
    assert "epoch 3 never comes" in capsys.readouterr().err and not (tmp_path / "other").exists()


# --------------------------------------------------------------------------------------
# Significance marks
# --------------------------------------------------------------------------------------
def test_welch_from_summary_stats_equals_the_test_on_seed_values():
    best = np.array([95.1, 94.2, 95.8, 94.9])
    close = np.array([94.0, 95.3, 93.9, 94.6, 95.0])
    far = np.array([90.1, 90.9, 89.7])
    for other in (close, far):
        raw = stats.ttest_ind(best, other, equal_var=False, alternative="greater").pvalue
        verdict = not_significantly_worse((best.mean(), best.std(ddof=1), len(best)),
                                          (other.mean(), other.std(ddof=1), len(other)))
        assert verdict == (raw >= 0.05)
    assert not_significantly_worse((95.0, 1.0, 3), (94.9, 1.0, 3)) is True
    assert not_significantly_worse((95.0, 0.1, 3), (90.0, 0.1, 3)) is False
    assert not_significantly_worse((95.0, 1.0, 3), (94.0, float("nan"), 1)) is None  # one seed: not tested


def summary_rows(rows):
    return pd.DataFrame([dict(dataset="digits", protocol="quick", noise="sym:0.4", method=m, n=n, best_mean=b,
                              best_std=bs, last_mean=l, last_std=ls) for m, n, b, bs, l, ls in rows])


def test_tables_bold_the_best_and_dagger_the_not_significantly_worse():
    summary = summary_rows([("standard", 3, 90.0, 1.0, 70.0, 2.0),
                            ("coteaching", 3, 94.5, 0.7, 90.0, 0.3),
                            ("lend", 3, 95.0, 0.5, 94.0, 0.4)])
    text = to_markdown(summary)
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
             for line in text.splitlines() if line.startswith("| ") and "Method" not in line}
    assert cells["lend"] == ["**95.00 ± 0.50**", "**94.00 ± 0.40**"]
    assert cells["coteaching"] == [f"94.50 ± 0.70 {NOT_WORSE_MARK}", "90.00 ± 0.30"]  # p = 0.20 / p < 0.001
    assert cells["standard"] == ["90.00 ± 1.00", "70.00 ± 2.00"]
    assert "one-sided Welch's t-test over seeds, α = 0.05" in text and "n = 3 seeds per cell" in text
    latex = to_latex(summary)
    assert "94.50 $\\pm$ 0.70 $^\\dagger$" in latex and "$\\alpha$ = 0.05" in latex


# Two methods on three seeds: the seeds differ a lot (each draws other noisy labels), and on every
# seed "other" is 1-2 points behind "best".  Independent samples hide that; pairs show it.
SEED_SPREAD_BEST = {0: 60.0, 1: 70.0, 2: 80.0}
SEED_SPREAD_OTHER = {0: 58.5, 1: 69.0, 2: 78.6}


def test_paired_test_pairs_by_seed_and_sees_through_the_spread_over_seeds():
    seeds = sorted(SEED_SPREAD_BEST)
    best, other = ([d[s] for s in seeds] for d in (SEED_SPREAD_BEST, SEED_SPREAD_OTHER))
    raw = stats.ttest_rel(best, other, alternative="greater").pvalue
    assert raw < 0.05  # differences 1.5, 1.0, 1.4
    assert paired_not_significantly_worse(SEED_SPREAD_BEST, SEED_SPREAD_OTHER) is False
    welch = not_significantly_worse((np.mean(best), np.std(best, ddof=1), 3), (np.mean(other), np.std(other, ddof=1), 3))
    assert welch is True  # the same numbers as independent samples: p ~ 0.45
    # Ahead on one seed, behind on another: not significantly worse.
    assert paired_not_significantly_worse({0: 60.0, 1: 70.0, 2: 80.0}, {0: 61.0, 1: 68.0, 2: 79.5}) is True
    # Only the seeds both have are paired; fewer than two shared seeds is not tested.
    assert paired_not_significantly_worse({**SEED_SPREAD_BEST, 7: 99.0}, SEED_SPREAD_OTHER) is False
    assert paired_not_significantly_worse({0: 60.0, 1: 70.0}, {1: 50.0, 2: 40.0}) is None
    # A constant difference has no spread: worse when behind, not worse when level.
    assert paired_not_significantly_worse({0: 60.0, 1: 70.0}, {0: 59.0, 1: 69.0}) is False
    assert paired_not_significantly_worse({0: 60.0, 1: 70.0}, {0: 60.0, 1: 70.0}) is True


def test_bench_table_test_paired_drops_the_dagger_of_a_method_behind_on_every_seed(tmp_path, capsys):
    for method, values in (("lend", SEED_SPREAD_BEST), ("standard", SEED_SPREAD_OTHER)):
        for seed, value in values.items():
            write_trial(tmp_path, method, "sym:0.4", seed, [{"epoch": e, "test_acc": value / 100}
                                                             for e in range(1, EPOCHS + 1)])
    summary = summarize(load_trials(tmp_path))
    lend = summary.set_index("method").loc["lend"]
    assert lend["last_by_seed"] == pytest.approx(SEED_SPREAD_BEST)

    def standard_cells(args):
        assert main(["table", "--results", str(tmp_path), *args]) == 0
        text = capsys.readouterr().out
        row = next(line for line in text.splitlines() if line.startswith("| standard"))
        return [c.strip() for c in row.split("|")[2:4]], text

    cells, text = standard_cells([])
    assert cells == [f"68.70 ± 10.05 {NOT_WORSE_MARK}"] * 2 and "Welch" in text
    cells, text = standard_cells(["--test", "paired"])
    assert cells == ["68.70 ± 10.05"] * 2 and "paired t-test over the seeds both cells share" in text
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "r.md"), "--test", "paired",
                 "--tsne", "none"]) == 0
    assert "paired t-test" in (tmp_path / "r.md").read_text()
    with pytest.raises(ValueError, match="per-seed values"):
        to_markdown(summary.drop(columns=["best_by_seed"]), test="paired")
    from noisybench.bench.cli import build_parser

    assert build_parser().parse_args(["run", "--test", "paired"]).test == "paired"  # run prints the same table


def test_csv_contract_is_unchanged(store):
    from noisybench.results.tables import to_csv

    frame = pd.read_csv(io.StringIO(to_csv(summarize(load_trials(store)))))
    # The columns of 0.1, in their order; then each cell's rule versions (issue 27), last.
    assert list(frame.columns) == ["dataset", "protocol", "noise", "method", "n", "best_mean", "best_std",
                                   "last_mean", "last_std", "rule_versions"]


# --------------------------------------------------------------------------------------
# Published numbers
# --------------------------------------------------------------------------------------
def test_reference_rows_are_complete_and_sourced():
    reference = load_reference()
    assert len(reference) >= 12
    for column in ("source", "table", "dataset", "noise", "method", "backbone", "protocol"):
        assert (reference[column].str.len() > 0).all(), column
    assert set(reference["metric"]) <= {"best", "last", "unstated"}
    assert ((reference["value"] > 0) & (reference["value"] < 100)).all()
    from noisybench.methods import method_names

    assert set(reference["method"]) <= set(method_names())
    row = reference[(reference.dataset == "mnist") & (reference.noise == "pair:0.45")].iloc[0]
    assert row.value == pytest.approx(87.58) and "bhanML/Co-teaching" in row.source
    assert list(reference.columns[:len(REFERENCE_COLUMNS)]) == REFERENCE_COLUMNS


def test_compare_paper_puts_published_beside_measured_and_flags_the_protocol():
    summary = pd.DataFrame([dict(dataset="mnist", protocol="original", noise="sym:0.5", method="coteaching", n=3,
                                 best_mean=92.0, best_std=0.3, last_mean=91.0, last_std=0.4),
                            dict(dataset="mnist", protocol="original", noise="sym:0.5", method="gce", n=3,
                                 best_mean=90.0, best_std=0.3, last_mean=89.0, last_std=0.4)])
    pairs = compare_with_reference(summary, load_reference())
    # Co-teaching's README (metric unstated) and its paper's Table 4 (Last), both on MNIST sym:0.5.
    assert sorted(pairs.published) == [pytest.approx(91.32), pytest.approx(91.68)]
    assert all("no noisybench protocol reproduces" in remark for remark in pairs.protocol_differs)
    assert set(pairs.verdict) == {NOT_JUDGED}
    text = render_comparison(summary, "markdown")
    assert "91.68" in text and "92.00 ± 0.30" in text and "unstated" in text
    assert "\\begin{tabular}" in render_comparison(summary, "latex")
    none = render_comparison(summary.assign(dataset="digits"), "markdown")
    assert none.startswith("Published numbers: none for the measured cells")


def test_cli_table_compare_paper(store, capsys):
    assert main(["table", "--results", str(store), "--compare-paper"]) == 0
    out = capsys.readouterr().out
    assert "Published numbers: none" in out and "**" in out
    # As CSV, the comparison rows alone (tests/test_compare_paper.py): here only their header.
    assert main(["table", "--results", str(store), "--compare-paper", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("dataset,protocol,noise,method,metric,n,measured_mean,")


# --------------------------------------------------------------------------------------
# The report page
# --------------------------------------------------------------------------------------
def test_report_page_links_existing_figures_and_counts_trials(store, tmp_path):
    trial = next(p for p in store.iterdir() if p.name.startswith("digits_lend_sym-0.4_s0"))
    write_snapshot(trial, 5)
    out = tmp_path / "out" / "report.md"
    out.parent.mkdir()
    written = write_report(store, out, tsne_subsample=60, echo=lambda _: None)
    page = out.read_text()
    assert written[0] == out and len(set(written)) == len(written)  # no figure overwrites another
    for figure in written[1:]:
        assert figure.parent == out.parent and figure.stat().st_size > 5_000
        assert f"]({figure.name})" in page  # linked by a relative path
    names = {p.name for p in written[1:]}
    assert {"report_curves_test_acc.png", "report_dilution_vs_prediction.png", "report_diagnostics_train_loss.png",
            "report_diagnostics_label_precision.png", f"report_tsne_{trial.name}_e5.png",
            "report_diagnostics_test_acc.png"} <= names  # net 2's test accuracy beside net 1's
    assert png_size(out.parent / "report_curves_test_acc.png") == pixels(2 * CURVE_PANEL_INCHES[0], CURVE_PANEL_INCHES[1])
    # trial counts per state: 12 done, the failed one with its error, the incomplete one
    assert "14 trial directories: 12 done, 1 failed, 1 incomplete" in page
    assert "RuntimeError: boom" in page
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in page.splitlines() if line.startswith("| digits")]
    assert ["digits", "quick", "sym:0.4", "lend", "3", "0", "1", "40.0%"] in rows
    assert ["digits", "quick", "sym:0.4", "standard", "3", "1", "0", "40.0%"] in rows
    # the table with significance marks and the protocols from spec.json
    assert "Bold: best mean in the column" in page and "Published numbers: none" in page
    assert "dotted: the accuracy of the noisy labels themselves" in page
    assert "| optimizer" in page and "adam" in page and "- lend: k=8" in page
    best = summarize(load_trials(store)).set_index(["noise", "method"]).loc[("sym:0.4", "lend"), "best_mean"]
    assert f"{best:.2f}" in page


def test_report_refuses_bad_output(store, tmp_path, capsys):
    assert main(["report", "--results", str(store), "--out", str(tmp_path / "r.html")]) == 2
    (tmp_path / "a_file").write_text("")
    assert main(["report", "--results", str(store), "--out", str(tmp_path / "a_file" / "r.md")]) == 2
    assert main(["report", "--results", str(tmp_path / "nothing"), "--out", str(tmp_path / "new" / "r.md")]) == 2
    assert not list(tmp_path.glob("*.md")) and not (tmp_path / "new").exists()  # nothing half-written
    # A good run makes the report's folder (the README's `--out report/report.md`).
    assert main(["report", "--results", str(store), "--out", str(tmp_path / "new" / "r.md"), "--tsne", "none"]) == 0
    assert (tmp_path / "new" / "r.md").is_file()
