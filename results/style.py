"""How every figure of a store looks the same: one colour and marker per method, human names and
units for the logged metrics.  Used by results/plots.py (curves) and results/report.py."""
from __future__ import annotations

import re

METRIC_LINESTYLES = ["-", "--", ":", "-."]
# Fractions in [0, 1] that the paper plots in percent.
PERCENT_METRIC = re.compile(r"(acc|precision|recall|fraction)")

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def method_colors(methods) -> dict[str, tuple]:
    """One colour per method, the same in every figure of every store: a method's colour is fixed
    by its place among the registered methods, whichever others a figure shows.  The variants of a
    method (its --hp rows) share its colour and differ by marker (:func:`method_markers`)."""
    from matplotlib import colormaps

    from noisybench.methods import method_names

    bases = list(method_names())
    bases += sorted({m.split("[")[0] for m in methods} - set(bases))  # a name no longer registered
    palette = colormaps["tab10" if len(bases) <= 10 else "tab20"]
    return {m: palette(bases.index(m.split("[")[0]) % palette.N) for m in set(methods)}


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
