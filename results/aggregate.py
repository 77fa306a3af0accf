"""Load a trial store into pandas DataFrames and aggregate over seeds.

Best = highest test accuracy over epochs; Last = mean test accuracy over the last 10
epochs (the LEND paper's two numbers).  Across seeds: mean and sample std (ddof=1), in
percent, with n.  Only finished trials (done.json present) are ever counted.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from noisybench.core.errors import BenchError
from noisybench.core.rules import (
    describe_part,
    first_difference,
    parse_versions_text,
    recorded_rule_versions,
    versions_text,
)
from noisybench.core.seeding import CURRENT_SEEDING, LEGACY_SEEDING
from noisybench.results.integrity import excluded_line, verified_done_trials, verify_done, warn
from noisybench.results.labels import (
    LABEL_DATA,
    OLD_SEEDING_MARK,
    label_data,
    method_label,
    plugin_version_mark,
    protocol_label,
    with_label_data,
)
from noisybench.results.store import DONE, DamagedTrial, TrialDir, TrialStore
from noisybench.results.summary import best_and_last

GROUP_KEYS = ["dataset", "protocol", "noise", "method"]
SUMMARY_COLUMNS = GROUP_KEYS + ["n", "best_mean", "best_std", "last_mean", "last_std"]


def trial_identity(record: dict) -> dict:
    """The columns that say which cell and seed a trial belongs to, and what keeps cells apart (its
    seeding scheme, its plugin versions), and the data the labels are made from (results/labels.py):
    one definition for tables, curves and per-class tables."""
    spec = record["spec"]
    return {"dataset": spec["dataset"], "protocol": protocol_label(spec, record), "noise": spec["noise"],
            "method": method_label(spec), "seed": spec["seed"],
            "seeding": spec.get("seeding", LEGACY_SEEDING), "plugin": spec.get("plugin"), **label_data(spec)}


def keep_cells_apart(frame: pd.DataFrame, echo: Callable[[str], None] = warn) -> pd.DataFrame:
    """Trials of the old seeding scheme and of other plugin versions in rows of their own."""
    return keep_plugin_versions_apart(keep_old_seeding_apart(frame, echo))


def _trial_row(record: dict, state: str, metrics: list[dict], path) -> dict:
    numbers = best_and_last(metrics)
    row = {
        **trial_identity(record), "state": state,
        "best": numbers["best"], "last": numbers["last"], "epochs_run": numbers["epochs"], "path": str(path),
        "realised_noise": (record.get("noise") or {}).get("realised_rate"),
        # The code versions it was trained with (a record without them: version 1 of each part).
        "rule_versions": versions_text(recorded_rule_versions(record)),
    }
    if metrics:
        row["best_epoch"] = numbers["best_epoch"]
        row["seconds"] = float(sum(m.get("seconds", 0.0) for m in metrics))
        if "val_balanced_acc" in metrics[0]:
            # Selected: test accuracy at the epoch of best noisy-validation accuracy
            # (a model choice that needs no clean labels).
            val = [m["val_balanced_acc"] for m in metrics]
            row["selected"] = metrics[int(np.argmax(val))]["test_acc"]
        if any("own_selected" in m for m in metrics):
            # Own: the test accuracy of the last model the method's own rule adopted (Me-Momentum's
            # best-validation model, its paper's number); NaN when the rule adopted none.
            adopted = [m["test_acc"] for m in metrics if m.get("own_selected")]
            row["own"] = adopted[-1] if adopted else math.nan
    return row


def check_one_rule_version_per_cell(trials: pd.DataFrame) -> None:
    """Refuse, in one line, a cell whose trials were trained by different versions of a part's code
    (core/rules.py): a mean over them would be a number of neither version."""
    if trials.empty or "rule_versions" not in trials:
        return
    for key, cell in trials.groupby(GROUP_KEYS, sort=False):
        versions = list(dict.fromkeys(cell["rule_versions"]))
        if len(versions) < 2:
            continue
        part, a, b = first_difference(parse_versions_text(versions[0]), parse_versions_text(versions[1]))
        paths = [cell.loc[cell["rule_versions"] == v, "path"].iloc[0] for v in versions[:2]]
        raise BenchError(f"the cell {' '.join(map(str, key))} holds trials of two versions of "
                         f"{describe_part(part)} (version {a}: {paths[0]}; version {b}: {paths[1]}), which a "
                         "table never averages: rerun the sweep with `bench run ... --rerun-stale` to move the "
                         "stale ones aside and train them again, or table them from separate --results")


def load_trials(root, states: tuple[str, ...] = (DONE,), echo: Callable[[str], None] = warn) -> pd.DataFrame:
    """One row per trial: identity columns, state, Best / Last (fractions) and extras.

    A finished trial is counted only when it passes results/integrity.py's checks; one that does
    not -- and any trial whose spec.json cannot be read -- is named through ``echo`` and left out."""
    rows = []
    for trial in TrialStore(root).trials():
        try:
            state = trial.state
            if state == DONE:
                verified = verify_done(trial)
                if DONE in states:
                    rows.append(_trial_row(verified.record, DONE, verified.metrics, trial.path))
            elif state in states:
                rows.append(_trial_row(trial.read_spec(), state, [], trial.path))
            elif trial.spec_file.exists():
                trial.read_spec()
        except DamagedTrial as err:
            echo(excluded_line(str(err), root))
    return keep_cells_apart(pd.DataFrame(rows), echo)


def keep_plugin_versions_apart(frame: pd.DataFrame) -> pd.DataFrame:
    """A plugin method trained under two versions of its package is two methods: where one row
    label holds trials of several versions, each row is labelled with its version, e.g.
    ``bootstrap {noisybench-bootstrap==0.2.0}``, and they are never averaged together."""
    if frame.empty or "plugin" not in frame or frame["plugin"].isna().all():
        return frame
    frame = frame.copy()
    versions = frame.groupby("method")["plugin"].transform(lambda v: v.fillna("").nunique())
    mixed = versions > 1
    marks = frame.loc[mixed, "plugin"].fillna("").map(plugin_version_mark)
    frame.loc[mixed, "method"] = frame.loc[mixed, "method"] + marks
    return frame


def keep_old_seeding_apart(frame: pd.DataFrame, echo: Callable[[str], None] = warn) -> pd.DataFrame:
    """Mark the method of every trial seeded by noisybench 0.1 (from its spec hash) when the store
    also holds trials seeded today (common random numbers), so that the two are never averaged in
    one cell nor paired as if they shared their initialisation and batches.  A store of 0.1 trials
    only is one scheme throughout and is tabled as before."""
    if frame.empty or "seeding" not in frame or frame["seeding"].nunique() < 2:
        return frame
    frame = frame.copy()
    old = frame["seeding"] != CURRENT_SEEDING
    frame.loc[old, "method"] = frame.loc[old, "method"] + OLD_SEEDING_MARK
    trials = frame.loc[old, ["dataset", "protocol", "noise", "method", "seed"]].drop_duplicates()
    echo(f"{len(trials)} trials were seeded by noisybench 0.1's scheme (from the spec hash, not shared "
         f"across methods); they are kept in rows marked '{OLD_SEEDING_MARK.strip()}' -- rerun the sweep to "
         f"compare them with the rest")
    return frame


def load_epochs(root, echo: Callable[[str], None] = warn) -> pd.DataFrame:
    """Every epoch line of every finished (and verified) trial, with the trial's identity columns."""
    frames = []
    for verified in verified_done_trials(root, echo):
        frame = pd.DataFrame(verified.metrics)
        for key, value in trial_identity(verified.record).items():
            frame[key] = value
        frame["rule_versions"] = versions_text(recorded_rule_versions(verified.record))
        frame["path"] = str(verified.trial.path)
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    epochs = keep_cells_apart(pd.concat(frames, ignore_index=True), echo)
    check_one_rule_version_per_cell(epochs)  # a curve's mean ± std band is an average too
    return epochs


def values_by_seed(trials: pd.DataFrame, column: str) -> dict[int, float]:
    """{seed: value in percent} of one cell's trials, leaving out seeds without a value."""
    return {int(seed): float(value) * 100.0 for seed, value in zip(trials["seed"], trials[column])
            if not math.isnan(value)}


def spec_difference(first: str, second: str) -> str:
    """The spec fields two trial directories differ in, as 'field (a vs b)'.  (Two copies of one
    trial never get here: results/integrity.py leaves a directory not named for its spec out.)"""
    try:
        a, b = (TrialDir(Path(p)).read_spec()["spec"] for p in (first, second))
    except DamagedTrial:
        return "something"
    fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return ", ".join(f"{k} ({a.get(k)!r} vs {b.get(k)!r})" for k in fields[:3]) or "nothing (the same spec)"


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1) over seeds, in percent; one row per (dataset, protocol, noise, method).

    Besides ``<part>_mean``/``<part>_std`` each row carries ``<part>_by_seed``, {seed: percent}, and
    the data its labels are made from (results/labels.py's LABEL_DATA).
    """
    if trials.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS + LABEL_DATA)
    done = with_label_data(trials[trials["state"] == DONE])
    check_one_rule_version_per_cell(done)
    twice = done[done.duplicated(GROUP_KEYS + ["seed"], keep=False)]
    if not twice.empty:  # one seed counted twice would shrink the std and fake a larger n
        paths = sorted(twice["path"].astype(str))[:2]
        raise BenchError(f"two finished trials fall in one cell with the same seed ({', '.join(paths)}); their specs "
                         f"differ in {spec_difference(*paths)}, which the table does not show -- table them from "
                         "separate --results directories")
    value_cols = ["best", "last"] + [c for c in ("selected", "own") if c in done]
    # A label determines its data, so grouping by both keeps the cells and carries the data along.
    grouped = done.groupby(GROUP_KEYS + LABEL_DATA, sort=False)
    out = grouped["best"].count().to_frame("n")
    for col in value_cols:
        out[f"{col}_mean"] = grouped[col].mean() * 100.0
        out[f"{col}_std"] = grouped[col].std(ddof=1) * 100.0
    if "own" in done:  # seeds whose method reported a model (mean and std are over those)
        out["own_n"] = grouped["own"].count()
    if "rule_versions" in done:  # one per cell (checked above): the CSV's record of the code behind it
        out["rule_versions"] = grouped["rule_versions"].first()
    # Per-seed values (percent) for the paired test: every method of a seed sees the same noisy
    # labels, so two methods' results on one seed are a pair.
    for col in value_cols:
        out[f"{col}_by_seed"] = [values_by_seed(grouped.get_group(key), col) for key in out.index]
    out = out.reset_index()
    extra = [c for c in out.columns if c not in SUMMARY_COLUMNS]
    return out[SUMMARY_COLUMNS + extra]
