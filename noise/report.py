"""The text `bench noise` prints: realised rate, designed and empirical transition matrices.

Matrices up to :data:`MAX_PRINTED_CLASSES` classes are printed in full (columns are class
indices, rows carry the class name too, to stay within a terminal's width); larger ones
are summarised by per-class rates and the most frequent flips.  Full matrices are always
in the trial record (:meth:`NoisyLabels.as_json`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noisybench.noise.apply import NoisyLabels

MAX_PRINTED_CLASSES = 20
TOP_FLIPS = 10
_ROW_LABEL_WIDTH = 18


def _percent(value: float | None) -> str:
    return "unknown" if value is None else f"{100 * value:.2f}%"


def _row_labels(class_names: Sequence[str]) -> list[str]:
    # Digits' classes are named "0".."9": repeating the index would only add noise.
    return [
        (str(index) if name == str(index) else f"{index} {name}")[:_ROW_LABEL_WIDTH]
        for index, name in enumerate(class_names)
    ]


def _table(cells: list[list[str]], row_labels: list[str], column_labels: list[str], corner: str) -> list[str]:
    label_width = max(len(corner), *(len(label) for label in row_labels))
    width = max(max(len(cell) for row in cells for cell in row), *(len(label) for label in column_labels))
    lines = ["  " + corner.ljust(label_width) + "".join(f" {label:>{width}}" for label in column_labels)]
    for label, row in zip(row_labels, cells):
        lines.append("  " + label.ljust(label_width) + "".join(f" {cell:>{width}}" for cell in row))
    return lines


def _designed_lines(transition: np.ndarray, row_labels: list[str]) -> list[str]:
    cells = [[("0" if p == 0 else f"{p:.3f}") for p in row] for row in transition]
    columns = [str(j) for j in range(len(transition))]
    return ["designed transition matrix T[clean, noisy] (probabilities):"] + _table(
        cells, row_labels, columns, "clean \\ noisy"
    )


def class_noise(empirical) -> tuple[list[float], list[bool]]:
    """Per clean class, from the C x C count matrix of (clean, noisy) training labels: the share
    of its labels that were flipped, and whether some other label is at least as frequent as the
    clean one (the class is outvoted)."""
    counts = np.asarray(empirical, dtype=float)
    totals = counts.sum(axis=1)
    kept = np.diag(counts)
    others = counts.copy()
    np.fill_diagonal(others, -1.0)
    flip = np.where(totals > 0, 1.0 - kept / np.maximum(totals, 1.0), np.nan)
    outvoted = (others.max(axis=1) >= kept) & (totals > 0)
    return flip.tolist(), outvoted.tolist()


def _empirical_lines(empirical: np.ndarray, row_labels: list[str]) -> list[str]:
    row_rates = np.nan_to_num(class_noise(empirical)[0])  # a class without samples prints 0.0%
    cells = [[f"{count:,}" for count in row] + [f"{100 * rate:.1f}%"] for row, rate in zip(empirical, row_rates)]
    columns = [str(j) for j in range(len(empirical))] + ["noise"]
    return [
        "empirical transition (counts; rows = clean class, columns = noisy label, last column = row noise rate):"
    ] + _table(cells, row_labels, columns, "clean \\ noisy")


def _summary_lines(empirical: np.ndarray, class_names: Sequence[str]) -> list[str]:
    num_classes = len(empirical)
    totals = empirical.sum(axis=1)
    row_rates = np.array(class_noise(empirical)[0])
    present = totals > 0
    lines = [f"{num_classes}x{num_classes} matrices are too wide to print; the trial record holds them in full."]
    if present.any():
        rates = row_rates[present]
        indices = np.flatnonzero(present)
        low, high = indices[np.argmin(rates)], indices[np.argmax(rates)]
        lines.append(
            f"per-class noise rate: min {100 * row_rates[low]:.1f}% ({low} {class_names[low]}), "
            f"median {100 * np.median(rates):.1f}%, max {100 * row_rates[high]:.1f}% ({high} {class_names[high]})"
        )
    off_diagonal = empirical.copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(off_diagonal, axis=None, kind="stable")[::-1][:TOP_FLIPS]
    flips = [(int(k // num_classes), int(k % num_classes)) for k in order if off_diagonal.flat[k] > 0]
    if flips:
        lines.append("most frequent flips (clean -> noisy: count, share of the clean class):")
        for source, target in flips:
            count = empirical[source, target]
            lines.append(
                f"  {source} {class_names[source]} -> {target} {class_names[target]}: "
                f"{count:,} ({100 * count / totals[source]:.1f}%)"
            )
    return lines


def _histogram_lines(labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    counts = np.bincount(labels, minlength=len(class_names))
    lines = ["no clean labels to compare with; noisy label counts per class:"]
    lines += [f"  {label}: {count:,}" for label, count in zip(_row_labels(class_names), counts)]
    return lines


def format_noise_report(noisy: NoisyLabels, class_names: Sequence[str]) -> str:
    """Human-readable summary of one noise draw: rates first, then the matrices."""
    if len(class_names) != noisy.num_classes:
        raise ValueError(f"{len(class_names)} class names for {noisy.num_classes} classes")
    total = len(noisy.labels)
    lines = [f"noise {noisy.spec.text} on {noisy.dataset_name}, seed {noisy.seed}: {total:,} training labels, {noisy.num_classes} classes"]
    if noisy.realised_rate is not None:
        wrong = int(round(noisy.realised_rate * total))
        lines.append(
            f"realised noise rate {_percent(noisy.realised_rate)} ({wrong:,} of {total:,} labels differ from the clean ones); "
            f"nominal {_percent(noisy.nominal_rate)}"
        )
    else:
        lines.append(f"realised noise rate unknown (no clean labels); nominal {_percent(noisy.nominal_rate)}")

    small = noisy.num_classes <= MAX_PRINTED_CLASSES
    row_labels = _row_labels(class_names)
    if noisy.transition is not None and small:
        lines += [""] + _designed_lines(noisy.transition, row_labels)
    elif noisy.transition is None:
        lines += ["", f"designed transition matrix: none ({noisy.spec.kind} noise is not drawn from one matrix)"]
    if noisy.empirical is not None:
        lines += [""] + (_empirical_lines(noisy.empirical, row_labels) if small else _summary_lines(noisy.empirical, class_names))
        outvoted = [i for i, out in enumerate(class_noise(noisy.empirical)[1]) if out]
        if outvoted:  # a finite draw can do this (pair:0.45 on ~125 images a class): no method recovers them
            names = ", ".join(f"{i} {class_names[i]}" if class_names[i] != str(i) else str(i) for i in outvoted[:TOP_FLIPS])
            more = f" and {len(outvoted) - TOP_FLIPS} more" if len(outvoted) > TOP_FLIPS else ""
            lines.append(f"outvoted classes (another label at least as frequent as the clean one): {names}{more}")
    else:
        lines += [""] + _histogram_lines(noisy.labels, class_names)
    return "\n".join(lines)
