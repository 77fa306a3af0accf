"""A trial's two numbers, Best and Last.

Best = the highest test accuracy over epochs, Last = the mean test accuracy over the last 10
epochs (the LEND paper's two numbers).  The trainer's done.json (hence every launcher's progress
lines: results/outcome.py) and the tables all take them from :func:`best_and_last`, so there is
one rule.
"""
from __future__ import annotations

import math

import numpy as np

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
