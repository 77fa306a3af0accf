"""`bench table --hparams`: the recipe and resolved hyperparameters behind each method's cells, read
from spec.json, per cell where the cells differ; Markdown, LaTeX and CSV, on a hand-made store."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from noisybench.bench.cli import main
from noisybench.core.spec import TrialSpec
from noisybench.results.hparams_table import render_hparams
from noisybench.results.tables import TableOptions

from helpers import finish_trial

RECIPE = {"model": "mlp", "optimizer": "adam", "lr": 0.0005, "epochs": 12, "milestones": []}


def write_trial(root, method, noise, seed, hparams: dict, recipe: dict = RECIPE, hp=()):
    spec = TrialSpec(dataset="digits", method=method, noise=noise, seed=seed, protocol="quick", hparams=hp)
    path = root / spec.dirname
    path.mkdir(parents=True)
    record = {"spec": spec.to_json(), "hash": spec.hash, "recipe": recipe, "hparams": hparams}
    (path / "spec.json").write_text(json.dumps(record))
    (path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "test_acc": 0.5, "train_loss": 1.0}) + "\n"
                                                for e in (1, 2)))
    finish_trial(path)


@pytest.fixture
def store(tmp_path):
    for seed in (0, 1):
        write_trial(tmp_path, "standard", "sym:0.4", seed, {})
        write_trial(tmp_path, "standard", "pair:0.45", seed, {})
        # ELR's defaults depend on the noise: the values are given per cell.
        write_trial(tmp_path, "elr", "sym:0.4", seed, {"beta": 0.7, "lam": 3.0, "clamp": 1e-4})
        write_trial(tmp_path, "elr", "pair:0.45", seed, {"beta": 0.9, "lam": 1.0, "clamp": 1e-4})
        # Its own recipe (a method under `original`): the recipe field is the method's, not shared.
        write_trial(tmp_path, "gce", "sym:0.4", seed, {"q": 0.7, "truncated": False}, {**RECIPE, "lr": 0.01})
    return tmp_path


def rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")][2:]


def test_markdown_shared_recipe_once_then_each_method_with_per_cell_values(store):
    table = rows(render_hparams(store, "markdown"))
    shared = [(s, v) for m, s, v in table if m == "every method"]
    assert shared == [("recipe: epochs", "12"), ("recipe: milestones", "[]"), ("recipe: model", "mlp"),
                      ("recipe: optimizer", "adam")]
    assert [r for r in table if r[0] == "standard"] == [["standard", "recipe: lr", "0.0005"]]  # gce's lr differs
    assert ["elr", "beta", "sym:0.4: 0.7; pair:0.45: 0.9"] in table  # per cell, in the table's column order
    assert ["elr", "clamp", "0.0001"] in table  # one value for every cell: given once
    assert ["elr", "recipe: lr", "0.0005"] in table and ["gce", "recipe: lr", "0.01"] in table
    assert ["gce", "truncated", "false"] in table
    assert [m for m, _, _ in table if m != "every method"][:1] == ["standard"]  # the table's row order


def test_a_method_without_hyperparameters_or_a_recipe_of_its_own_has_one_empty_row(store):
    table = rows(render_hparams(store, "markdown", TableOptions(methods=("standard",))))
    assert table[-1] == ["standard", "–", "–"] and all(m == "every method" for m, _, _ in table[:-1])


def test_csv_one_row_per_cell_and_setting(store):
    frame = pd.read_csv(io.StringIO(render_hparams(store, "csv")), dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["dataset", "protocol", "method", "noise", "setting", "value"]
    beta = frame[(frame.method == "elr") & (frame.setting == "beta")]
    assert dict(zip(beta.noise, beta.value)) == {"sym:0.4": "0.7", "pair:0.45": "0.9"}
    assert set(frame[frame.method == "standard"].setting) == {f"recipe.{k}" for k in RECIPE}


def test_latex_and_the_table_options(store):
    text = render_hparams(store, "latex", TableOptions(methods=("elr",), noises=("pair:0.45",)))
    assert "\\begin{tabular}{lll}" in text and "\\label{tab:hparams-digits-quick}" in text
    assert "elr & beta & 0.9" in text and "sym:0.4" not in text.split("\\midrule", 1)[1]
    assert "gce" not in text and "standard" not in text.split("\\caption", 1)[1].split("}", 1)[1]


def test_seeds_of_one_cell_that_differ_show_both_values(tmp_path):
    write_trial(tmp_path, "gce", "sym:0.4", 0, {"q": 0.7})
    write_trial(tmp_path, "gce", "sym:0.4", 1, {"q": 0.8})  # a store written by two versions of a default
    assert ["gce", "q", "0.7 / 0.8"] in rows(render_hparams(tmp_path, "markdown"))


def test_bench_table_hparams_follows_format_and_filters(store, capsys):
    assert main(["table", "--results", str(store), "--hparams", "--methods", "elr", "--format", "csv"]) == 0
    assert set(pd.read_csv(io.StringIO(capsys.readouterr().out)).method) == {"elr"}
    assert main(["table", "--results", str(store), "--hparams", "--compare-paper"]) == 2
    assert "ask for one at a time" in capsys.readouterr().err
