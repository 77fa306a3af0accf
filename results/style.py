"""How every figure of a store looks the same: one colour and marker per method, human names and
units for the logged metrics.  Used by results/plots.py (curves) and results/report.py."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

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


def method_color(name: str) -> str:
    """The colour of a method, by its registry name (its rows of other labels share it)."""
    import zlib

    if name in BUILTIN_COLORS:
        return BUILTIN_COLORS[name]
    return OTHER_COLORS[zlib.crc32(name.encode()) % len(OTHER_COLORS)]


def _names(methods: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """{row label: registry name}; a plain list holds registry names (each its own label)."""
    return dict(methods) if isinstance(methods, Mapping) else {m: m for m in methods}


def method_colors(methods: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """One colour per row label, the same in every figure of every store and every version: fixed
    per built-in method, by name for any other, whichever methods a figure shows.  ``methods`` maps
    each label to its registry name (results/labels.py's method_names_by_label), or lists registry
    names.  The rows of one method (its --hp variants, its marked rows) share its colour and
    differ by marker (:func:`method_markers`)."""
    return {label: method_color(name) for label, name in _names(methods).items()}


def method_markers(methods: Mapping[str, str] | Iterable[str]) -> dict[str, str | None]:
    """No marker for a method's plain row; one marker per other row of the method (its --hp
    variants, its marked rows), in label order.  ``methods`` as for :func:`method_colors`."""
    rows_of: dict[str, list[str]] = {}
    for label, name in sorted(_names(methods).items()):
        rows_of.setdefault(name, []).append(label)
    out = {}
    for name, labels in rows_of.items():
        ordered = [m for m in labels if m == name] + [m for m in labels if m != name]
        for i, label in enumerate(ordered):
            out[label] = None if label == name or len(labels) == 1 else MARKERS[i % len(MARKERS)]
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
