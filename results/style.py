"""How every figure of a store looks the same: one colour and marker per method, human names and
units for the logged metrics.  Used by results/plots.py (curves) and results/report.py."""
from __future__ import annotations

import re

METRIC_LINESTYLES = ["-", "--", ":", "-."]
# Fractions in [0, 1] that the paper plots in percent.
PERCENT_METRIC = re.compile(r"(acc|precision|recall|fraction)")

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


# A fixed colour for each built-in method (matplotlib's tab10, then tab20's darker others), so that
# adding a method, or installing a plugin, never repaints the ones already in a paper's figures.
BUILTIN_COLORS = {
    "standard": "#7f7f7f", "coteaching": "#1f77b4", "gce": "#ff7f0e", "jocor": "#2ca02c", "sigua": "#9467bd",
    "lend": "#d62728", "me_momentum": "#8c564b", "self_learning": "#e377c2", "elr": "#bcbd22",
    "elr_plus": "#17becf", "dividemix": "#393b79",
}
# Any other method (a plugin, a name no longer registered) takes one of these by a hash of its name.
OTHER_COLORS = ("#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1")


def method_color(method: str) -> str:
    """The colour of a method's base name (its --hp variants share it; they differ by marker)."""
    import zlib

    base = method.split("[")[0].split(" ")[0]
    if base in BUILTIN_COLORS:
        return BUILTIN_COLORS[base]
    return OTHER_COLORS[zlib.crc32(base.encode()) % len(OTHER_COLORS)]


def method_colors(methods) -> dict[str, str]:
    """One colour per method, the same in every figure of every store and every version: fixed per
    built-in method, by name for any other, whichever methods a figure shows.  The variants of a
    method (its --hp rows) share its colour and differ by marker (:func:`method_markers`)."""
    return {m: method_color(m) for m in set(methods)}


def method_markers(methods) -> dict[str, str | None]:
    """No marker for a method's plain row; one marker per --hp variant, in label order."""
    variants: dict[str, list[str]] = {}
    for m in sorted(set(methods)):
        variants.setdefault(m.split("[")[0], []).append(m)
    out = {}
    for base, labels in variants.items():
        plain = [m for m in labels if m == base]
        for i, m in enumerate(plain + [m for m in labels if m != base]):
            out[m] = None if m == base or len(labels) == 1 else MARKERS[i % len(MARKERS)]
    return out


# Human names of the metrics the trainer and the methods log (axis labels and legends).
METRIC_NAMES = {
    "test_acc": "test accuracy", "train_loss": "training loss", "lr": "learning rate",
    "val_acc": "noisy-validation accuracy", "val_balanced_acc": "noisy-validation balanced accuracy",
    "label_precision": "label precision", "label_recall": "label recall", "kept_fraction": "kept fraction",
    "weight_noisy": "weight on noisy samples", "forget_rate": "forget rate",
    "diluted_label_acc": "diluted-label accuracy", "model_pred_acc": "model-prediction accuracy",
    "nan_fallbacks": "dilution fallbacks", "test_acc_net2": "test accuracy (net 2)",
}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def metric_scale(metric: str) -> float:
    return 100.0 if PERCENT_METRIC.search(metric) else 1.0


def metric_axis_label(metrics: list[str]) -> str:
    units = {" (%)" if metric_scale(m) == 100.0 else "" for m in metrics}
    return " / ".join(metric_name(m) for m in metrics) + (units.pop() if len(units) == 1 else "")
