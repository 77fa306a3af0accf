"""A trial's two numbers, Best and Last, and the one-line report of a finished trial.

Best = the highest test accuracy over epochs, Last = the mean test accuracy over the last 10
epochs (the LEND paper's two numbers).  The trainer's done.json, the progress lines of every
launcher and the tables all take them from :func:`best_and_last`, so there is one rule.
"""
from __future__ import annotations

import math

import numpy as np

from noisybench.core.layout import FAILED, HANDED_OVER

LAST_K = 10


def best_and_last(metrics: list[dict], last_k: int = LAST_K) -> dict:
    """{best, best_epoch, last, epochs} of a trial's metrics lines (fractions; NaN without lines).

    The best epoch is the first one that reaches the highest accuracy.
    """
    accs = [float(m["test_acc"]) for m in metrics]
    if not accs:
        return {"best": math.nan, "best_epoch": 0, "last": math.nan, "epochs": 0}
    best_i = int(np.argmax(accs))
    return {"best": accs[best_i], "best_epoch": metrics[best_i]["epoch"], "last": float(np.mean(accs[-last_k:])),
            "epochs": len(accs)}


def format_progress(i: int, total: int, spec, summary: dict) -> str:
    """``[i/total] method noise seed s: best .. (epoch ..) last ..  t s`` -- or the failure."""
    head = f"[{i}/{total}] {spec.method:<12} {spec.noise:<10} seed {spec.seed}"
    if summary.get("state") == FAILED:
        return f"{head}: FAILED after {summary['seconds']:.1f} s: {summary['error']}"
    if summary.get("state") == HANDED_OVER:
        return f"{head}: handed over to {summary['holder']}, which finished it (not trained here)"
    if summary.get("skipped"):  # finished by another process while this one waited or ran others
        return (f"{head}: finished by another process (best {100 * summary['best']:.2f}, last "
                f"{100 * summary['last']:.2f}); not trained here")
    resumed = f", resumed at epoch {summary['resumed_from']}" if summary.get("resumed_from") else ""
    return (f"{head}: best {100 * summary['best']:.2f} (epoch {summary['best_epoch']}) "
            f"last {100 * summary['last']:.2f}  {summary['seconds']:.1f} s{resumed}")
