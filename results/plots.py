"""Figures in the LEND paper's style, drawn from the trial store.

- Learning curves (the paper's Fig. 6/7): one panel per noise setting, one line per method
  (mean over seeds) with a ±std band, epochs on x.  Any per-epoch metric of metrics.jsonl can
  be drawn; several metrics at once give the paper's Fig. 4 (diluted-label accuracy against
  model-prediction accuracy over training), one line style per metric.
- t-SNE of the penultimate features (the paper's Fig. 1): one embedding, coloured three ways
  -- true, predicted and noisy labels -- from a `bench run --save-features` snapshot.

Everything is drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas and never
through pyplot, so figures render the same on a machine without a display and no global
figure state leaks between calls.  Every plotting function returns the Figure, so tests and
notebooks can read back exactly what was drawn.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from noisybench.core.errors import BenchError
from noisybench.core.layout import FEATURE_SNAPSHOT_NAME
from noisybench.results.style import (  # noqa: F401  (method_colors, metric_name: this module's API too)
    METRIC_LINESTYLES,
    method_colors,
    method_markers,
    metric_axis_label,
    metric_name,
    metric_scale,
)
from noisybench.results.labels import LABEL_DATA, method_names_by_label, sort_methods
from noisybench.results.tables import noise_sort_key

SETTING_KEYS = ["dataset", "protocol", "noise"]
IDENTITY_COLUMNS = {"dataset", "protocol", "noise", "method", "seed", "epoch", "seeding", "plugin", *LABEL_DATA}
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
DPI = 100
CURVE_PANEL_INCHES = (5.0, 3.6)
TSNE_PANEL_INCHES = (4.6, 4.4)


def new_figure(width_inches: float, height_inches: float, dpi: int = DPI) -> Figure:
    figure = Figure(figsize=(width_inches, height_inches), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)  # headless: the figure draws with Agg whatever the default backend is
    return figure


def check_figure_path(out) -> Path:
    """A figure path must name a format matplotlib writes and a directory that exists."""
    path = Path(out)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise BenchError(f"--out {out}: name a .png, .pdf or .svg file")
    if not path.parent.is_dir():
        raise BenchError(f"--out {out}: directory {path.parent} does not exist; create it first")
    return path


# --------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------
def available_metrics(epochs: pd.DataFrame) -> list[str]:
    """Per-epoch numeric metrics present in at least one trial's metrics.jsonl."""
    return sorted(c for c in epochs.columns
                  if c not in IDENTITY_COLUMNS and pd.api.types.is_numeric_dtype(epochs[c]) and epochs[c].notna().any())


def check_metrics(epochs: pd.DataFrame, metrics: list[str], where: str) -> None:
    known = available_metrics(epochs) if not epochs.empty else []
    for metric in metrics:
        if metric not in known:
            raise BenchError(f"metric {metric!r} is in no finished trial under {where}; "
                             f"available: {', '.join(known) or 'none'}")


def curve_table(epochs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n over seeds of ``metric`` per setting, method and epoch.

    A trial that logs the metric in only some epochs counts where it does (n may vary by epoch).
    """
    keys = SETTING_KEYS + ["method", "epoch"]
    rows = epochs.loc[epochs[metric].notna(), keys + [metric]] if metric in epochs else pd.DataFrame()
    if rows.empty:
        return pd.DataFrame(columns=keys + ["mean", "std", "n"])
    grouped = rows.groupby(keys, sort=True)[metric]
    table = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()}).reset_index()
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def parse_epoch_range(text: str | None) -> tuple[int, int] | None:
    """``A:B`` (1-based, inclusive; either end may be left out) -> (A, B); None: every epoch."""
    if not text:
        return None
    start, sep, stop = text.partition(":")
    try:
        first, last = int(start or 1), int(stop) if stop else 10**9
    except ValueError:
        first = last = 0
    if not sep or first < 1 or last < first:
        raise BenchError(f"--epochs {text}: expected A:B with 1 <= A <= B (either may be left out), e.g. 1:100")
    return first, last


X_AXES = ("auto", "epoch", "progress")
# x = "auto" draws progress instead of epochs when one method's budget is over this many times another's.
LONG_BUDGET_RATIO = 2.0


def uses_progress(epochs: pd.DataFrame, x_axis: str) -> bool:
    """Whether the x-axis is each method's training progress rather than its epoch: asked for, or
    (auto) when budgets differ so much (Me-Momentum's 400-500 epochs beside 100) that the shorter
    methods would be squeezed into a fraction of each panel."""
    if x_axis not in X_AXES:
        raise BenchError(f"--x {x_axis}: choose one of {', '.join(X_AXES)}")
    if x_axis != "auto" or epochs.empty:
        return x_axis == "progress"
    budgets = epochs.groupby(SETTING_KEYS + ["method"])["epoch"].max()
    longest = budgets.groupby(level=SETTING_KEYS).agg(["min", "max"])
    return bool((longest["max"] > LONG_BUDGET_RATIO * longest["min"]).any())


def plot_curves(epochs: pd.DataFrame, metrics: list[str], out=None, *, where: str = "the results",
                colors: dict | None = None, levels: dict | None = None, dpi: int = DPI,
                epoch_range: tuple[int, int] | None = None, sharey: bool = False, x_axis: str = "auto") -> Figure:
    """Learning curves: one panel per (dataset, protocol, noise), one line per method and metric.

    Lines are the mean over seeds; the band is ±1 sample std (drawn where n >= 2).  Accuracy-like
    metrics (fractions) are drawn in percent, as in the paper.  Each line's gid is
    ``"<method>|<metric>"`` so that the drawn numbers can be read back.  ``levels`` maps a setting
    (dataset, protocol, noise) to a (value in plotted units, label) drawn as a dotted horizontal
    line, e.g. the accuracy of the noisy labels themselves.  ``epoch_range`` (first, last) keeps
    those epochs only: a common x-range when one method trains far longer than the others.
    ``x_axis`` "progress" draws each method over its own budget, epoch / (its last epoch) in percent,
    so that 100 and 500 epochs span one width; "auto" does so when budgets differ over 2x.  The
    legend is drawn once, outside the panels; a method keeps its colour in every figure.
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    check_metrics(epochs, metrics, where)
    if epoch_range is not None:
        epochs = epochs[(epochs["epoch"] >= epoch_range[0]) & (epochs["epoch"] <= epoch_range[1])]
        if epochs.empty:
            raise BenchError(f"--epochs {epoch_range[0]}:{epoch_range[1]}: no epoch of {where} is in that range")
    progress = uses_progress(epochs, x_axis)
    budgets = epochs.groupby(SETTING_KEYS + ["method"])["epoch"].max() if progress else None
    tables = {m: curve_table(epochs, m) for m in metrics}
    present = pd.concat([t[SETTING_KEYS] for t in tables.values()]).drop_duplicates()
    settings = sorted(present.itertuples(index=False, name=None),
                      key=lambda s: (s[0], s[1], noise_sort_key(s[2])))
    several_protocols = len({(d, p) for d, p, _ in settings}) > 1
    names = method_names_by_label(epochs)
    drawn_methods = {label: names[label] for t in tables.values() for label in t["method"]}
    colors = colors or method_colors(drawn_methods)
    markers = method_markers(drawn_methods)
    ncols = min(3, len(settings))
    nrows = math.ceil(len(settings) / ncols)
    figure = new_figure(CURVE_PANEL_INCHES[0] * ncols, CURVE_PANEL_INCHES[1] * nrows, dpi)
    axes = figure.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel()
    legend: dict[str, object] = {}  # label -> a line carrying it (one legend for the figure)
    seeds: dict[str, set[int]] = {}
    for ax, (dataset, protocol, noise) in zip(axes, settings):
        for metric_index, metric in enumerate(metrics):
            table = tables[metric]
            panel = table[(table.dataset == dataset) & (table.protocol == protocol) & (table.noise == noise)]
            scale = metric_scale(metric)
            for method in sort_methods(panel["method"], names):
                curve = panel[panel["method"] == method]
                x = curve["epoch"].to_numpy(dtype=float)
                if progress:
                    x = 100.0 * x / float(budgets[(dataset, protocol, noise, method)])
                mean = curve["mean"].to_numpy(dtype=float) * scale
                std = curve["std"].to_numpy(dtype=float) * scale
                label = method if len(metrics) == 1 else f"{method}: {metric_name(metric)}"
                (line,) = ax.plot(x, mean, color=colors[method], linewidth=1.6,
                                  linestyle=METRIC_LINESTYLES[metric_index % len(METRIC_LINESTYLES)],
                                  marker=markers.get(method), markevery=max(1, len(x) // 8), markersize=4,
                                  label=label)
                line.set_gid(f"{method}|{metric}")
                legend.setdefault(label, line)
                seeds.setdefault(label, set()).add(int(curve["n"].max()))
                banded = np.isfinite(std)
                if banded.any():
                    ax.fill_between(x[banded], (mean - std)[banded], (mean + std)[banded],
                                    color=colors[method], alpha=0.18, linewidth=0)
        if levels and (dataset, protocol, noise) in levels:
            value, level_label = levels[(dataset, protocol, noise)]
            level = ax.axhline(value, color="0.4", linestyle=":", linewidth=1.2, label=level_label, gid="level")
            legend.setdefault("noisy labels" if level_label.startswith("noisy labels") else level_label, level)
        title = f"{dataset} · {noise}" + (f" · {protocol}" if several_protocols else "")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training progress (% of each method's epochs)" if progress else "epoch")
        ax.set_ylabel(metric_axis_label(metrics))
        ax.grid(True, alpha=0.3)
    for ax in axes[len(settings):]:
        ax.set_visible(False)
    labels = [f"{label} (n={seeds[label].pop()})" if len(seeds.get(label, ())) == 1 else label for label in legend]
    figure.legend(list(legend.values()), labels, loc="outside right upper", fontsize=7, frameon=False)
    if out is not None:
        figure.savefig(out)
    return figure


# --------------------------------------------------------------------------------------
# t-SNE of a feature snapshot
# --------------------------------------------------------------------------------------
def snapshot_epochs(trial_dir) -> list[int]:
    """Epochs with a feature snapshot in a trial directory."""
    pattern = re.compile(re.escape(FEATURE_SNAPSHOT_NAME).replace(r"\{epoch\}", r"(\d+)") + "$")
    found = (pattern.match(p.name) for p in Path(trial_dir).iterdir()) if Path(trial_dir).is_dir() else ()
    return sorted(int(m.group(1)) for m in found if m)


def load_feature_snapshot(trial_dir, epoch: int) -> dict:
    """The arrays of ``features_e{epoch}.npz`` plus the trial's spec (for titles)."""
    trial_dir = Path(trial_dir)
    if not (trial_dir / "spec.json").exists():
        raise BenchError(f"--trial {trial_dir}: not a trial directory (no spec.json); "
                         "pass one of the directories under a results dir")
    path = trial_dir / FEATURE_SNAPSHOT_NAME.format(epoch=epoch)
    if not path.exists():
        have = snapshot_epochs(trial_dir)
        hint = (f"it has epochs {', '.join(map(str, have))}" if have else
                "it has none; rerun the sweep into a fresh results dir with `bench run ... --save-features EPOCHS`")
        raise BenchError(f"--epoch {epoch}: no feature snapshot {path.name} in {trial_dir}; {hint}")
    with np.load(path, allow_pickle=False) as archive:  # a results directory is read as data only
        snapshot = {key: archive[key] for key in archive.files}
    snapshot["spec"] = json.loads((trial_dir / "spec.json").read_text())["spec"]
    return snapshot


def subsample_indices(num: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded uniform subsample without replacement (all when size >= num)."""
    if size is None or size >= num:
        return np.arange(num)
    if size < 10:
        raise BenchError(f"--subsample {size}: t-SNE needs at least 10 points")
    return np.sort(np.random.default_rng(seed).choice(num, size=size, replace=False))


def tsne_embedding(features: np.ndarray, seed: int) -> np.ndarray:
    """2-d t-SNE (scikit-learn, PCA initialisation, fixed random_state) of (n, d) features."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = features.shape[0]
    perplexity = min(30.0, (n - 1) / 3.0)  # scikit-learn requires perplexity < n
    # One OpenMP thread: a few thousand points take seconds that way, while threads competing
    # with training runs for the same cores made it 7x slower (800 points: 11 s vs 83 s).
    with threadpool_limits(limits=1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            features.astype(np.float32))


def class_colors(num_classes: int):
    from matplotlib import colormaps

    if num_classes <= 10:
        return [colormaps["tab10"](i) for i in range(num_classes)]
    if num_classes <= 20:
        return [colormaps["tab20"](i) for i in range(num_classes)]
    return [colormaps["hsv"](i / num_classes) for i in range(num_classes)]


def plot_tsne(snapshot: dict, out=None, *, subsample: int | None = 2000, seed: int = 0) -> tuple[Figure, dict]:
    """The paper's Fig. 1: one t-SNE of the features, coloured by true, predicted and noisy labels.

    Returns the figure and the numbers behind it (indices, embedding, accuracies) so callers can
    check what was drawn.
    """
    index = subsample_indices(snapshot["features"].shape[0], subsample, seed)
    embedding = tsne_embedding(snapshot["features"][index], seed)
    clean, predicted, noisy = (snapshot[k][index] for k in ("clean", "predicted", "noisy"))
    num_classes = int(max(clean.max(), predicted.max(), noisy.max())) + 1
    palette = np.array(class_colors(num_classes))
    info = {"index": index, "embedding": embedding,
            "predicted_accuracy": float((predicted == clean).mean()),
            "noise_rate": float((noisy != clean).mean())}
    has_clean = bool(snapshot.get("has_clean", True))
    panels = [("true labels", clean), (f"predicted labels ({100 * info['predicted_accuracy']:.1f}% correct)", predicted),
              (f"noisy labels ({100 * info['noise_rate']:.1f}% wrong)", noisy)]
    if not has_clean:  # real-noise datasets without clean training labels: only the given labels exist
        panels = [("given labels (no clean labels)", noisy),
                  (f"predicted labels ({100 * info['predicted_accuracy']:.1f}% agree with given)", predicted),
                  ("given labels", noisy)]
    figure = new_figure(TSNE_PANEL_INCHES[0] * 3, TSNE_PANEL_INCHES[1])
    axes = figure.subplots(1, 3)
    for ax, (title, labels) in zip(axes, panels):
        ax.scatter(embedding[:, 0], embedding[:, 1], c=palette[labels], s=6, linewidths=0)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if num_classes <= 20:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", linestyle="", color=palette[c], label=str(c)) for c in range(num_classes)]
        axes[0].legend(handles=handles, fontsize=6, loc="best", title="class", title_fontsize=7)
    spec = snapshot.get("spec") or {}
    figure.suptitle(f"t-SNE of penultimate features: {spec.get('dataset', '?')} {spec.get('noise', '')}, "
                    f"{spec.get('method', '?')}, seed {spec.get('seed', '?')}, epoch {int(snapshot['epoch'])} "
                    f"({len(index)} points)", fontsize=10)
    if out is not None:
        figure.savefig(out)
    return figure, info
