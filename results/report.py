"""`bench report`: one Markdown page for a results directory.

The page holds what a reader needs to judge a sweep without opening a terminal: how many trials
finished, failed or are unfinished (with the realised noise rates); the paper-style table with
significance marks and any published numbers for the same settings; the learning curves (the
LEND paper's Fig. 6/7), diluted-label against model-prediction accuracy where a method logs both
(Fig. 4), every other per-epoch diagnostic, t-SNE figures of saved features (Fig. 1); and the
resolved recipes and hyperparameters the trials ran with, read from their spec.json.

Figures are PNG files written next to the report and linked by relative paths, so the page and
its figures can be moved together.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import pandas as pd

from noisybench.core.errors import BenchError
from noisybench.results.aggregate import load_epochs, load_trials, summarize
from noisybench.results.store import DONE, FAILED, INCOMPLETE, DamagedTrial, TrialDir
from noisybench.results.labels import METHOD_NAME, method_names_by_label, method_sort_key, sort_methods
from noisybench.results.tables import noise_sort_key, render

# LEND's per-epoch diagnostics (methods/lend.py: StepOutput.relabelled scored against the clean
# labels): the accuracy of its diluted labels and of the model's own predictions on the training set.
DILUTION_METRICS = ["diluted_label_acc", "model_pred_acc"]
# Bookkeeping columns of metrics.jsonl that are not results (test_acc has its own figure).
NOT_DIAGNOSTICS = {"test_acc", "lr", "seconds", "round"}
# Two-network methods log net 2's copy of a diagnostic as net2_<name> or <name>_net2 (and loss_net1):
# one figure per diagnostic holds both networks, one line style each.
NETWORK_AFFIX = re.compile(r"^net\d+_|_net\d+$")
TSNE_CHOICES = ("first-seed", "all", "none")


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=header, tablefmt="github", disable_numparse=True)


def _setting_order(frame: pd.DataFrame) -> pd.DataFrame:
    method_order = [method_sort_key(label, name) for label, name in zip(frame["method"], frame[METHOD_NAME])]
    ordered = frame.assign(_n=frame["noise"].map(noise_sort_key), _m=method_order)
    return ordered.sort_values(["dataset", "protocol", "_n", "_m"]).drop(columns=["_n", "_m"])


def trial_counts_section(trials: pd.DataFrame) -> str:
    """Trials per state for every (dataset, protocol, noise, method), realised noise, failures."""
    keys = ["dataset", "protocol", "noise", "method", METHOD_NAME]  # the name, for the row order
    counts = trials.groupby(keys + ["state"]).size().unstack("state", fill_value=0)
    for state in (DONE, FAILED, INCOMPLETE):
        if state not in counts:
            counts[state] = 0
    realised = trials.groupby(keys)["realised_noise"].mean()
    table = _setting_order(counts.reset_index())
    rows = []
    for r in table.itertuples(index=False):
        key = (r.dataset, r.protocol, r.noise, r.method, r.method_name)
        rate = realised.get(key)
        rows.append([r.dataset, r.protocol, r.noise, r.method, str(getattr(r, DONE)), str(getattr(r, FAILED)),
                     str(getattr(r, INCOMPLETE)), "–" if rate is None or pd.isna(rate) else f"{100 * rate:.1f}%"])
    total = {s: int(counts[s].sum()) for s in (DONE, FAILED, INCOMPLETE)}
    lines = ["## Trials", "",
             f"{len(trials)} trial directories: {total[DONE]} done, {total[FAILED]} failed, "
             f"{total[INCOMPLETE]} incomplete (unfinished or running; never counted in a table). "
             "Realised noise: the mean over seeds of the fraction of training labels that differ from the clean ones.",
             "",
             _markdown_table(["Dataset", "Protocol", "Noise", "Method", "done", "failed", "incomplete",
                              "realised noise"], rows)]
    failed = trials[trials["state"] == FAILED]
    if not failed.empty:
        lines += ["", "Failed trials (traceback in each directory's failed.json):", ""]
        for r in failed.itertuples():
            try:
                error = TrialDir(Path(r.path)).read_failed().get("error", "?")
            except DamagedTrial as err:
                error = f"(failed.json unreadable: {err})"
            lines.append(f"- `{Path(r.path).name}`: {error}")
    return "\n".join(lines)


def applying_fields(recipe: dict, record: dict) -> dict:
    """The recipe fields that shape this trial: a schedule's own fields only under that schedule,
    Adam's beta1 named as such, and the validation split actually held out (a method may hold out
    more than the protocol's val_fraction, e.g. Me-Momentum's 10%)."""
    out = dict(recipe)
    if recipe.get("schedule") != "coteaching":
        out.pop("decay_start", None)
    if recipe.get("schedule") != "multistep":
        out.pop("milestones", None)
        out.pop("lr_gamma", None)
    if recipe.get("optimizer") == "adam":
        out["beta1 (momentum field)"] = out.pop("momentum", None)
        out.pop("nesterov", None)
    if not recipe.get("augment"):
        out.pop("crop_padding", None)
    num_train, num_val = record.get("num_train"), record.get("num_val")
    if num_train is not None and num_val is not None and num_train + num_val > 0:
        out["val_fraction"] = round(num_val / (num_train + num_val), 4)
    return out


def protocol_section(trials: pd.DataFrame) -> str:
    """The resolved recipe of every protocol (per method where they differ) and the hyperparameters."""
    records = {}
    names = method_names_by_label(trials)
    for r in trials.itertuples():
        record = json.loads((Path(r.path) / "spec.json").read_text())
        if "recipe" in record:  # a trial that failed before setup has only its spec
            records.setdefault((r.protocol, r.method), record)
    lines = ["## Protocols", "",
             "The recipes the trials trained with, as resolved and recorded in each trial's spec.json "
             "(a protocol's name plus any --model/--epochs/--batch-size change), and each method's hyperparameters."]
    for protocol in sorted({p for p, _ in records}):
        methods = sort_methods((m for p, m in records if p == protocol), names)
        recipes = {m: applying_fields(records[(protocol, m)]["recipe"], records[(protocol, m)]) for m in methods}
        fields = list(dict.fromkeys(k for recipe in recipes.values() for k in recipe))
        lines += ["", f"### {protocol}", ""]
        if all(recipes[m] == recipes[methods[0]] for m in methods):
            rows = [[field, str(recipes[methods[0]].get(field, "–"))] for field in fields]
            lines.append(_markdown_table(["Recipe field", f"all methods ({', '.join(methods)})"], rows))
        else:
            rows = [[field] + [str(recipes[m].get(field, "–")) for m in methods] for field in fields]
            lines.append(_markdown_table(["Recipe field"] + methods, rows))
        lines += ["", "Hyperparameters:", ""]
        for m in methods:
            hparams = records[(protocol, m)].get("hparams") or {}
            text = ", ".join(f"{k}={v}" for k, v in hparams.items()) or "none"
            lines.append(f"- {m}: {text}")
    return "\n".join(lines)


def _figure_link(path: Path, report: Path, caption: str) -> str:
    return f"![{caption}]({os.path.relpath(path, report.parent)})"


def write_report(results, out, *, tsne: str = "first-seed", tsne_subsample: int = 2000, tsne_seed: int = 0,
                 test: str = "welch", echo: Callable[[str], None] = print) -> list[Path]:
    """Write the report page and its figures; return the paths written (page first)."""
    from noisybench.results.paths import check_results_path
    from noisybench.results.plots import load_feature_snapshot, method_colors, plot_curves, plot_tsne, snapshot_epochs
    from noisybench.results.reference import render_comparison

    root, out = check_results_path(str(results), must_exist=True), Path(out)
    if out.suffix.lower() != ".md":
        raise BenchError(f"--out {out}: the report is Markdown; name a .md file")
    if out.parent.exists() and not out.parent.is_dir():
        raise BenchError(f"--out {out}: {out.parent} is a file, not a directory; name another folder")
    if tsne not in TSNE_CHOICES:
        raise BenchError(f"--tsne {tsne}: choose one of {', '.join(TSNE_CHOICES)}")
    trials = load_trials(root, states=(DONE, FAILED, INCOMPLETE))
    if trials.empty:
        raise BenchError(f"no trials under {results}; run `bench run --results {results}` first")
    # The report's own folder (its page and figures): made once the input is known to be good.
    out.parent.mkdir(parents=True, exist_ok=True)
    done = trials[trials["state"] == DONE]
    epochs = load_epochs(root)
    written: list[Path] = []
    stem = out.stem

    def figure_path(name: str) -> Path:
        path = out.parent / f"{stem}_{name}.png"
        written.append(path)
        return path

    sections = [f"# noisybench report: {root}", "",
                "Test accuracy is measured on the clean test set after every epoch. Best = the highest over "
                "epochs; Last = the mean over the last 10 epochs (the LEND paper's two numbers); mean ± sample "
                "std over seeds."]
    sections += ["", trial_counts_section(trials)]
    if done.empty:
        sections += ["", "No finished trials yet: no table or figure."]
    else:
        summary = summarize(done)
        sections += ["", "## Results", "", render(summary, "markdown", test).rstrip(), "",
                     "### Published numbers", "", render_comparison(summary, "markdown").rstrip()]
        colors = method_colors(method_names_by_label(epochs))  # one colour per method in every figure
        curves = figure_path("curves_test_acc")
        plot_curves(epochs, ["test_acc"], curves, where=str(root), colors=colors)
        sections += ["", "## Learning curves", "",
                     "Test accuracy (%) against epoch: mean over seeds, band ±1 std (the LEND paper's Fig. 6/7).",
                     "", _figure_link(curves, out, "test accuracy against epoch")]
        if all(m in epochs for m in DILUTION_METRICS):
            fig4 = figure_path("dilution_vs_prediction")
            # The bar both must clear: the accuracy of the noisy labels they start from.
            realised = done.dropna(subset=["realised_noise"]).groupby(["dataset", "protocol", "noise"])["realised_noise"].mean()
            levels = {key: (100 * (1 - rate), f"noisy labels ({100 * (1 - rate):.1f}%)") for key, rate in realised.items()}
            plot_curves(epochs, DILUTION_METRICS, fig4, where=str(root), colors=colors, levels=levels)
            sections += ["", "## Diluted labels against model predictions", "",
                         "Accuracy (%) on the training set, against the clean labels, of the diluted labels "
                         "(solid) and of the model's own predictions (dashed), for the methods that log both "
                         "(the LEND paper's Fig. 4); dotted: the accuracy of the noisy labels themselves.",
                         "", _figure_link(fig4, out, "diluted-label vs model-prediction accuracy")]
        from noisybench.results.classes import class_tables, load_class_accuracy

        per_class = load_class_accuracy(root)
        if not per_class.empty:
            sections += ["", "## Accuracy per class", "",
                         "Which classes each method loses: the noise each class received and each method's "
                         "Last test accuracy on it (`bench classes`).", "", class_tables(per_class).rstrip()]
        from noisybench.results.plots import available_metrics

        # A panel with nothing to show (a counter that stayed 0, e.g. LEND's nan_fallbacks) is left out.
        diagnostics = [m for m in available_metrics(epochs) if m not in NOT_DIAGNOSTICS and m not in DILUTION_METRICS
                       and epochs[m].fillna(0).abs().max() > 0]
        if diagnostics:
            sections += ["", "## Diagnostics", "",
                         "Every other per-epoch metric in metrics.jsonl, for the methods that log it "
                         "(label_precision: the fraction of selected samples whose label is clean; "
                         "label_recall: the fraction of clean samples selected)."]
            groups: dict[str, list[str]] = {}
            for metric in diagnostics:
                groups.setdefault(NETWORK_AFFIX.sub("", metric), []).append(metric)
            for name, metrics in groups.items():
                if name not in metrics and name in epochs:  # test_acc_net2 is drawn beside net 1's test_acc
                    metrics.insert(0, name)
                path = figure_path(f"diagnostics_{name}")
                plot_curves(epochs, metrics, path, where=str(root), colors=colors)
                sections += ["", f"### {', '.join(metrics)}", "", _figure_link(path, out, name)]
    if tsne != "none" and not done.empty:
        chosen = _setting_order(done).sort_values("seed", kind="stable")
        if tsne == "first-seed":
            chosen = chosen.drop_duplicates(["dataset", "protocol", "noise", "method"])
        chosen = _setting_order(chosen)
        tsne_lines = []
        for r in chosen.itertuples():
            for epoch in snapshot_epochs(r.path):
                echo(f"t-SNE: {r.method} {r.noise} seed {r.seed} epoch {epoch}")
                path = figure_path(f"tsne_{Path(r.path).name}_e{epoch}")
                plot_tsne(load_feature_snapshot(r.path, epoch), path, subsample=tsne_subsample, seed=tsne_seed)
                tsne_lines += ["", f"### {r.method}, {r.noise}, seed {r.seed}, epoch {epoch}", "",
                               _figure_link(path, out, f"t-SNE {r.method} {r.noise} epoch {epoch}")]
        if tsne_lines:
            sections += ["", "## t-SNE of penultimate features", "",
                         f"One 2-d t-SNE (scikit-learn, PCA init, random_state={tsne_seed}) of the training set's "
                         f"penultimate features, on a seeded subsample of at most {tsne_subsample} points, coloured by "
                         "the true, the predicted and the noisy label (the LEND paper's Fig. 1). Snapshots come "
                         "from `bench run --save-features`."] + tsne_lines
    sections += ["", protocol_section(trials), ""]
    out.write_text("\n".join(sections))
    return [out] + written
