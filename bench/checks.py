"""What a sweep checks before any launcher runs its trials (bench/launch.py run_sweep), so that
nothing is skipped, resumed or counted that should not be: the recipe and label file each stored
trial was trained with, finished trials that fail the store's integrity checks (moved aside and
redone), and trials another process holds (named; the sweep waits for them).
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

from noisybench.bench.staleness import check_stale, set_aside_stale
from noisybench.bench.trainer.resolve import ResolvedTrial
from noisybench.core.errors import BenchError
from noisybench.core.layout import DONE, INCOMPLETE
from noisybench.results.integrity import damage, move_aside_if_damaged, stored_trial_record, verify_done
from noisybench.results.lease import live_holder
from noisybench.results.store import DamagedTrial, TrialStore


def recipe_changes(stored: dict, current: dict) -> list[str]:
    """'field: old -> new' for every recipe field that differs (JSON forms: tuples are lists)."""
    old, new = json.loads(json.dumps(stored)), json.loads(json.dumps(current))
    return [f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def stored_records(specs: list[ResolvedTrial], store: TrialStore) -> list[tuple[ResolvedTrial, dict]]:
    """(spec, spec.json) of every done or incomplete trial whose record can be read and is its own (a
    damaged one is dealt with by :func:`pending_trials`)."""
    records = ((spec, stored_trial_record(store.trial(spec))) for spec in specs)
    return [(spec, record) for spec, record in records if record is not None]


def hparam_changes(stored: dict, trial: ResolvedTrial) -> list[str]:
    """'name: old -> new' for every resolved hyperparameter that differs from the stored record's.

    A record written before a default was filled ahead of hashing holds None where today's
    resolution fills a value (Co-teaching's forget rate was taken from the noise rate inside the
    method then): the method filled the same value from the same facts, so it is not a change."""
    filled_now = set(trial.hparam_sources)
    stored = {k: v for k, v in stored.items() if not (v is None and k in filled_now)}
    current = {k: v for k, v in trial.hparams_json().items() if k in stored or k not in filled_now}
    return recipe_changes(stored, current)


def check_stored_recipes(trials: list[ResolvedTrial], store: TrialStore) -> None:
    """Refuse to skip or resume a trial that was trained with another recipe, or other resolved
    hyperparameters, than it resolves to now (a protocol or a method's default changed between
    versions): the directory name hashes the spec, not everything it resolves to, so such a trial
    would be counted beside new ones as if it were alike."""
    stale = []
    for trial, record in stored_records(trials, store):
        changes = recipe_changes(record["recipe"], trial.recipe.to_json()) if record.get("recipe") is not None else []
        if record.get("hparams") is not None:
            changes += [f"{trial.method}.{c}" for c in hparam_changes(record["hparams"], trial)]
        if changes:
            stale.append((store.trial(trial), changes))
    if stale:
        trial, changes = stale[0]
        more = f" (and {len(stale) - 1} more trial(s) like it)" if len(stale) > 1 else ""
        raise BenchError(
            f"{trial.path} was trained with another recipe or other hyperparameters than its spec gives now "
            f"({'; '.join(changes[:3])}){more}: its numbers would not compare with new trials; move such "
            f"trials out of {store.root} or use another --results")


def label_file_sha256(path) -> str | None:
    """The labels_sha256 a `file:` label file gives now (noise.NoisyLabels' fingerprint)."""
    import numpy as np

    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return hashlib.sha256(np.ascontiguousarray(labels, dtype="<i8").tobytes()).hexdigest()


def check_label_files(specs: list[ResolvedTrial], store: TrialStore) -> None:
    """Refuse to skip or resume a `file:` trial whose label file changed since it was trained: its
    directory name holds the file's path, not its contents."""
    for spec, record in stored_records(specs, store):
        if not spec.noise.startswith("file:"):
            continue
        recorded = (record.get("noise") or {}).get("labels_sha256")
        path = spec.noise.split(":", 1)[1]
        if recorded is not None and label_file_sha256(path) != recorded:
            raise BenchError(f"{path} is not the label file {store.trial(spec).path} was trained on (its labels' "
                             "sha256 differs); restore that file, or move the trial out of the results directory "
                             "to train it on the new labels")


def set_aside_damaged(specs: list[ResolvedTrial], results_root, echo: Callable[[str], None]) -> None:
    """Name each finished trial of ``specs`` that fails results/integrity.py's checks and move it
    aside to <results>/.damaged/, so that it is trained again instead of skipped (or counted)."""
    store = TrialStore(results_root)
    for spec in specs:
        trial = store.trial(spec)
        if trial.state != DONE or damage(trial) is None:
            continue
        # Under the trial's lease: a live writer (another run of this sweep) keeps it, and decides.
        moved = move_aside_if_damaged(trial, results_root, lambda t: damage(t) if t.state == DONE else None)
        if moved is not None:
            echo(f"{moved[0]}: moved aside to {moved[1]}; it is trained again")


def pending_trials(specs: list[ResolvedTrial], results_root, echo: Callable[[str], None],
                   feature_epochs: tuple[int, ...] = (), rerun_stale: bool = False,
                   data_root=None) -> tuple[list[ResolvedTrial], int]:
    """The trials not yet done, and how many were skipped (said once, whichever launcher runs them).

    A finished trial is skipped only when it passes results/integrity.py's checks; a damaged one
    is named, moved aside to <results>/.damaged/ and trained again.  A stale one (bench/staleness.py)
    stops the sweep, or with ``rerun_stale`` is moved aside to <results>/.stale/ and trained again.
    Trials another process holds are named too: the sweep waits for them (a local or slurm launcher
    follows them)."""
    store = TrialStore(results_root)
    check_stored_recipes(specs, store)
    check_label_files(specs, store)
    set_aside_stale(specs, results_root, echo, rerun=rerun_stale, data_root=data_root)
    set_aside_damaged(specs, results_root, echo)
    todo = [spec for spec in specs if store.state(spec) != DONE]
    skipped = len(specs) - len(todo)
    if skipped:
        echo(f"{skipped} of {len(specs)} trials already done in {results_root}: skipped")
        if feature_epochs:
            # A finished trial is not rerun, so it keeps whatever feature snapshots it already has.
            echo("  (--save-features applies only to the trials run now; skipped trials keep their snapshots)")
    held = [(spec, holder) for spec in todo if (holder := live_holder(store.trial(spec).path)) is not None]
    if held:
        names = ", ".join(f"{spec.label()} ({holder.describe()})" for spec, holder in held[:3])
        more = f" and {len(held) - 3} more" if len(held) > 3 else ""
        echo(f"{len(held)} trials are being trained by another process: {names}{more}; the others run first, "
             f"then these are waited for (bench status --results {results_root} shows them)")
    return todo, skipped


def describe_trials(specs: list[ResolvedTrial], results_root, rerun_stale: bool = False, data_root=None) -> str:
    """`bench run --dry-run`: each trial of the sweep and what the store holds of it, then the counts."""
    store = TrialStore(results_root)
    check_stored_recipes(specs, store)  # a stale trial is not "done": say so now, as the run would
    stale = check_stale(specs, results_root, rerun=rerun_stale, data_root=data_root)
    lines, counts = [], {}
    for spec in specs:
        trial = store.trial(spec)
        holder = live_holder(trial.path)
        if spec.dirname in stale:
            state = f"stale ({stale[spec.dirname].why}): would be moved aside and trained again"
        elif trial.state == DONE:
            try:
                verify_done(trial)
                state = "done"
            except DamagedTrial as err:
                state = f"damaged ({err}): would be moved aside and trained again"
        elif holder is not None:
            state = f"running ({holder.describe()})"
        elif trial.state == INCOMPLETE:
            epoch = trial.checkpointed_epoch()
            state = f"incomplete: would resume from epoch {epoch}" if epoch else "incomplete: would restart"
        elif trial.state == "failed":
            state = "failed: would be trained again"
        else:
            state = "not started"
        kind = "not started" if state == "not started" else state.split(" ")[0].rstrip(":")
        counts[kind] = counts.get(kind, 0) + 1
        hp = ",".join(f"{k}={v}" for k, v in spec.hparams)
        lines.append(f"  {spec.method + (f'[{hp}]' if hp else ''):<28} {spec.noise:<12} seed {spec.seed:<3} {state}")
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return "\n".join([f"{len(specs)} trials in {results_root} ({summary}):", *lines])
