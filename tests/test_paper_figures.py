"""Figures for a paper: a method keeps its colour in every figure, readable axis labels, one
legend per figure outside the panels, --dpi, a common epoch range, and a report that writes into
its own folder, shows no empty panel and lists only the recipe fields that apply."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from noisybench.bench.cli import main
from noisybench.core.spec import TrialSpec
from noisybench.results.aggregate import load_epochs
from noisybench.results.plots import method_colors, method_markers, plot_curves
from noisybench.results.report import applying_fields

from helpers import finish_trial


def write_trial(root, method, seed, epochs=12, hparams=(), extra=None):
    spec = TrialSpec(dataset="digits", method=method, noise="sym:0.4", seed=seed, protocol="quick", hparams=hparams)
    path = root / spec.dirname
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"spec": spec.to_json(), "hash": spec.hash}))
    with open(path / "metrics.jsonl", "w") as f:
        for epoch in range(1, epochs + 1):
            line = {"epoch": epoch, "test_acc": 0.5 + 0.01 * epoch + 0.001 * seed, "train_loss": 1.0 / epoch}
            line.update(extra or {})
            f.write(json.dumps(line) + "\n")
    finish_trial(path)


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        write_trial(root, "standard", seed)
        write_trial(root, "lend", seed, extra={"nan_fallbacks": 0.0})
        write_trial(root, "lend", seed, hparams=(("k", "4"),))
        write_trial(root, "me_momentum", seed, epochs=60)
    return root


def test_a_method_keeps_its_colour_whatever_else_a_figure_shows():
    alone = method_colors(["lend"])
    rows = {"standard": "standard", "coteaching": "coteaching", "lend": "lend", "lend[k=4]": "lend", "gce": "gce",
            "lend (0.1 seeding)": "lend"}  # row label -> registry name, as the store's frames carry them
    together = method_colors(rows)
    assert alone["lend"] == together["lend"] == together["lend[k=4]"] == together["lend (0.1 seeding)"]
    assert len({together[m] for m in ("standard", "coteaching", "lend", "gce")}) == 4
    lend_rows = ("lend[k=4]", "lend[k=16]", "lend (0.1 seeding)")
    markers = method_markers({"lend": "lend", "standard": "standard", **{label: "lend" for label in lend_rows}})
    assert markers["lend"] is None and markers["standard"] is None
    assert len({markers[label] for label in lend_rows}) == 3 and None not in {markers[label] for label in lend_rows}


def test_labels_legend_dpi_and_epoch_range(store, tmp_path):
    epochs = load_epochs(store)
    figure = plot_curves(epochs, ["test_acc"], tmp_path / "c.png", dpi=200, epoch_range=(1, 12))
    ax = figure.axes[0]
    assert ax.get_ylabel() == "test accuracy (%)"
    assert ax.get_legend() is None and len(figure.legends) == 1  # once per figure, not per panel
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["standard (n=2)", "lend (n=2)", "lend[k=4] (n=2)", "me_momentum (n=2)"]  # standard first
    assert max(max(line.get_xdata()) for line in ax.lines) == 12  # me_momentum's 60 epochs cut to the range
    with Image.open(tmp_path / "c.png") as image:
        assert image.size == (round(5.0 * 200), round(3.6 * 200))
    loss = plot_curves(epochs, ["train_loss"])
    assert loss.axes[0].get_ylabel() == "training loss"


def test_cli_plot_curves_takes_dpi_epochs_and_sharey(store, tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert main(["plot", "curves", "--results", str(store), "--out", str(out), "--dpi", "150",
                 "--epochs", "1:20", "--sharey"]) == 0
    with Image.open(out) as image:
        assert image.size == (round(5.0 * 150), round(3.6 * 150))
    for argv, words in ((["--epochs", "20:1"], "--epochs 20:1"), (["--epochs", "100:200"], "no epoch"),
                        (["--dpi", "1"], "--dpi 1")):
        assert main(["plot", "curves", "--results", str(store), "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err


def test_report_writes_into_its_folder_and_leaves_empty_panels_out(store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    assert main(["report", "--results", str(store), "--tsne", "none"]) == 0
    assert set(tmp_path.iterdir()) - before == {tmp_path / "report"}  # nothing else in the current directory
    page = (tmp_path / "report" / "report.md").read_text()
    assert "nan_fallbacks" not in page  # it stayed 0: no panel
    assert not any("nan_fallbacks" in p.name for p in (tmp_path / "report").iterdir())


def test_the_recipe_table_lists_only_fields_that_apply():
    adam_constant = {"model": "mlp", "optimizer": "adam", "lr": 5e-4, "momentum": 0.9, "weight_decay": 0.0,
                     "batch_size": 64, "epochs": 100, "schedule": "constant", "milestones": [], "lr_gamma": 0.1,
                     "decay_start": 80, "augment": False, "crop_padding": 4, "nesterov": False, "val_fraction": 0.0}
    fields = applying_fields(adam_constant, {"num_train": 900, "num_val": 100})
    for gone in ("decay_start", "milestones", "lr_gamma", "crop_padding", "nesterov", "momentum"):
        assert gone not in fields, gone
    assert fields["beta1 (momentum field)"] == 0.9 and fields["val_fraction"] == pytest.approx(0.1)
    coteaching = {**adam_constant, "schedule": "coteaching"}
    assert applying_fields(coteaching, {})["decay_start"] == 80
    assert np.isclose(applying_fields({**adam_constant, "optimizer": "sgd", "schedule": "multistep",
                                       "milestones": [50]}, {})["momentum"], 0.9)


def test_a_long_budget_does_not_squeeze_the_other_methods(store):
    epochs = load_epochs(store)  # me_momentum trains 60 epochs, the others 12
    auto = plot_curves(epochs, ["test_acc"]).axes[0]
    assert auto.get_xlabel() == "training progress (% of each method's epochs)"
    ends = {line.get_gid().split("|")[0]: max(line.get_xdata()) for line in auto.lines}
    assert ends == {"standard": 100.0, "lend": 100.0, "lend[k=4]": 100.0, "me_momentum": 100.0}
    standard = next(line for line in auto.lines if line.get_gid() == "standard|test_acc")
    assert standard.get_xdata()[0] == pytest.approx(100 / 12)
    by_epoch = plot_curves(epochs, ["test_acc"], x_axis="epoch").axes[0]
    assert by_epoch.get_xlabel() == "epoch" and max(max(line.get_xdata()) for line in by_epoch.lines) == 60
    alike = plot_curves(epochs[epochs["method"] != "me_momentum"], ["test_acc"]).axes[0]
    assert alike.get_xlabel() == "epoch"  # equal budgets: epochs, as always


def test_every_registered_method_has_its_own_fixed_colour():
    from noisybench.methods import get_method, method_names
    from noisybench.results.style import BUILTIN_COLORS, method_color, method_colors

    builtins = {n for n in method_names() if get_method(n).__module__.startswith("noisybench.")}
    assert set(BUILTIN_COLORS) >= builtins  # a new built-in method needs its colour here
    assert len(set(BUILTIN_COLORS.values())) == len(BUILTIN_COLORS)
    assert method_color("lend") == BUILTIN_COLORS["lend"]
    plugin = method_colors({"bootstrap": "bootstrap", "bootstrap[beta=0.9]": "bootstrap",
                            "bootstrap {noisybench-bootstrap==0.2.0}": "bootstrap"})
    assert len(set(plugin.values())) == 1  # a plugin: by its name, on every row of it
