"""Test accuracy per true class, beside how the noise treated each class: `bench classes`.

Class-dependent noise (pair, asym, human labels) hurts some classes and spares others, and a
finite draw can leave a class whose clean label is no longer the most frequent of its training
labels ("outvoted": under pair:0.45 on digits, with ~125 images a class, one to five classes a
seed).  There every method that trusts the majority of a class's labels learns the wrong class.
This table shows, for one setting, each class's realised flip rate, in how many seeds it was
outvoted, and each method's Last accuracy on it; two summary rows average each method over the
classes that kept their majority and over the outvoted ones, seed by seed.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from noisybench.noise.report import class_noise
from noisybench.results.aggregate import GROUP_KEYS, keep_cells_apart, trial_identity
from noisybench.results.integrity import verified_done_trials
from noisybench.results.summary import LAST_K
from noisybench.results.labels import method_names_by_label, sort_methods
from noisybench.results.tables import noise_sort_key

PER_CLASS_METRIC = "test_acc_per_class"


def load_class_accuracy(root) -> pd.DataFrame:
    """One row per (finished trial, class): the setting, seed, class, ``last`` (mean over the
    last 10 epochs of the class's test accuracy), ``flip`` and ``outvoted`` (NaN / None when the
    dataset has no clean training labels).  Trials that did not record per-class accuracy are
    left out, and so are trials that fail results/integrity.py's checks (each named on stderr)."""
    rows = []
    for verified in verified_done_trials(root):
        per_epoch = [m[PER_CLASS_METRIC] for m in verified.metrics if PER_CLASS_METRIC in m]
        if not per_epoch:
            continue
        record = verified.record
        values = np.array([[math.nan if v is None else v for v in epoch] for epoch in per_epoch[-LAST_K:]])
        empirical = (record.get("noise") or {}).get("empirical")
        flip, outvoted = class_noise(empirical) if empirical is not None else (None, None)
        identity = trial_identity(record)
        for cls in range(values.shape[1]):
            rows.append({**identity, "class": cls, "last": float(np.mean(values[:, cls])),
                         "flip": math.nan if flip is None else flip[cls],
                         "outvoted": None if outvoted is None else bool(outvoted[cls])})
    return keep_cells_apart(pd.DataFrame(rows))


def _percent(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def _group_mean(frame: pd.DataFrame, mask) -> tuple[float, int]:
    """Mean over seeds of each seed's mean over the classes in ``mask``; and the seeds that have any."""
    chosen = frame[mask]
    if chosen.empty:
        return math.nan, 0
    per_seed = chosen.groupby("seed")["last"].mean()
    return float(per_seed.mean()), len(per_seed)


def class_tables(frame: pd.DataFrame) -> str:
    """Markdown: one table per (dataset, protocol, noise)."""
    from tabulate import tabulate

    out = []
    settings = frame.groupby(["dataset", "protocol", "noise"], sort=False)
    for (dataset, protocol, noise) in sorted(settings.groups, key=lambda k: (k[0], k[1], noise_sort_key(k[2]))):
        block = settings.get_group((dataset, protocol, noise))
        methods = sort_methods(block["method"], method_names_by_label(block))
        seeds = sorted(block["seed"].unique())
        # The noise draw depends on the seed only, so any one method's trials describe it.
        draw = block[block["method"] == methods[0]]
        known = draw["outvoted"].notna().any()
        header = ["Class", "Flipped %", "Outvoted in"] + methods
        rows = []
        for cls, by_class in block.groupby("class", sort=True):
            classes_draw = draw[draw["class"] == cls]
            outvoted = f"{int(classes_draw['outvoted'].sum())}/{len(classes_draw)}" if known else "–"
            means = by_class.groupby("method")["last"].mean()
            rows.append([str(cls), _percent(classes_draw["flip"].mean()), outvoted]
                        + [_percent(means.get(m, math.nan), 2) for m in methods])
        notes = []
        if known:
            for name, want in (("classes that kept their majority", False), ("outvoted classes", True)):
                if not (draw["outvoted"] == want).any():  # e.g. no class outvoted in any seed
                    continue
                cells = []
                for m in methods:
                    trials = block[block["method"] == m]
                    mean, n = _group_mean(trials, trials["outvoted"] == want)
                    cells.append(_percent(mean, 2) + (f" (n={n})" if n != len(seeds) else ""))
                rows.append([name, "", ""] + cells)
            notes.append("Flipped %: the share of the class's training labels the noise changed, mean over seeds; "
                         "Outvoted in: the seeds in which another label is at least as frequent among the class's "
                         "training samples as its own. The summary rows average, seed by seed, each method's "
                         "accuracy over the classes that kept their majority and over the outvoted ones (where "
                         "any are; n: the seeds that have such a class, where fewer than all)")
        else:
            notes.append("The dataset has no clean training labels, so the noise per class is unknown")
        out.append(f"Test accuracy (%) per true class on {dataset}, protocol {protocol}, noise {noise}: "
                   f"Last = mean of the last {LAST_K} epochs, mean over {len(seeds)} seed(s).\n")
        out.append(tabulate(rows, headers=header, tablefmt="github", disable_numparse=True))
        out.append("\n" + ". ".join(notes) + ".\n")
    return "\n".join(out).rstrip() + "\n"


def class_csv(frame: pd.DataFrame) -> str:
    """One row per (setting, method, seed, class): a contract for scripts."""
    columns = GROUP_KEYS + ["seed", "class", "last", "flip", "outvoted"]
    return frame[columns].to_csv(index=False, float_format="%.4f")
