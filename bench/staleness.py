"""Stale is not done: stored trials that today's code would not reproduce.

A trial's directory is named by the hash of its spec, which names its method, network, dataset
and noise but not the code behind them.  A stored trial (finished or not) is stale when

* the rule version its spec.json records for a part differs from the version the code declares
  now (core/rules.py; a record without ``rule_versions`` reads as version 1 of every part), or
* the sha256 of the noisy labels it trained on differs from that of the labels today's noise
  code draws for its (dataset, noise, seed): a generator that now draws other labels makes its
  old trials stale without anyone bumping anything.  A record without the fingerprint cannot be
  compared and is not stale.

`bench run` (every launcher, and --dry-run) refuses a sweep with a stale trial in one line naming
the first one and the fix; with ``--rerun-stale`` each is moved aside to <results>/.stale/
(nothing deleted; `bench verify` lists them) under its lease, and trained again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import noisybench.datasets as datasets
import noisybench.noise as noise
from noisybench.bench.trainer.resolve import ResolvedTrial
from noisybench.core.errors import BenchError
from noisybench.core.rules import recorded_rule_versions, rule_difference
from noisybench.results.integrity import STALE_DIR, move_aside_if_damaged, stored_trial_record
from noisybench.results.store import TrialDir, TrialStore

RERUN_FLAG = "--rerun-stale"


@dataclass(frozen=True)
class StaleTrial:
    spec: ResolvedTrial
    trial: TrialDir
    why: str  # "method standard: stored version 1, code version 2", or "its noisy labels differ ..."


class LabelFingerprints:
    """The sha256 of the noisy labels today's noise code draws for (dataset, noise, seed), each
    drawn once (every method of a seed shares them), on the dataset the sweep loaded."""

    def __init__(self, data_root=None):
        self.data_root = data_root
        self._drawn: dict[tuple[str, str, int], str] = {}

    def __call__(self, spec: ResolvedTrial) -> str:
        key = (spec.dataset, spec.noise, spec.seed)
        if key not in self._drawn:
            dataset = datasets.load(spec.dataset, self.data_root)  # cached: the sweep loaded it already
            drawn = noise.apply_noise(noise.parse_noise(spec.noise), dataset, spec.seed, data_root=self.data_root)
            self._drawn[key] = drawn.labels_sha256
        return self._drawn[key]


def why_stale(spec: ResolvedTrial, record: dict, fingerprints: LabelFingerprints) -> str | None:
    """Why the stored trial with spec.json ``record`` is stale, or None when today's code would
    train it the same way (as far as its record can tell)."""
    changed = rule_difference(recorded_rule_versions(record), dict(spec.rule_versions))
    if changed is not None:
        return changed
    stored = (record.get("noise") or {}).get("labels_sha256")
    if stored is not None:
        now = fingerprints(spec)
        if now != stored:
            return (f"its noisy labels differ from those the noise code draws for {spec.noise}, seed {spec.seed} "
                    f"today (sha256 {stored[:12]} stored, {now[:12]} now)")
    return None


def find_stale(specs: list[ResolvedTrial], results_root, fingerprints: LabelFingerprints) -> list[StaleTrial]:
    """Every stored trial of ``specs`` that is stale, in the sweep's order."""
    store = TrialStore(results_root)
    found = []
    for spec in specs:
        trial = store.trial(spec)
        record = stored_trial_record(trial)
        why = why_stale(spec, record, fingerprints) if record is not None else None
        if why is not None:
            found.append(StaleTrial(spec, trial, why))
    return found


def refusal(stale: list[StaleTrial], results_root) -> str:
    """One line: the first stale trial, why, and the fix."""
    first = stale[0]
    more = f" (and {len(stale) - 1} more stale trial(s))" if len(stale) > 1 else ""
    return (f"{first.trial.path} is stale, trained by other code than today's: {first.why}{more}; its numbers "
            f"would not compare with new trials: rerun with {RERUN_FLAG} to move stale trials aside to "
            f"{Path(results_root) / STALE_DIR} (nothing is deleted) and train them again")


def check_stale(specs: list[ResolvedTrial], results_root, *, rerun: bool, data_root=None,
                fingerprints: LabelFingerprints | None = None) -> dict[str, StaleTrial]:
    """The sweep's stale trials by directory name; refuses (BenchError) unless ``rerun``."""
    stale = find_stale(specs, results_root, fingerprints or LabelFingerprints(data_root))
    if stale and not rerun:
        raise BenchError(refusal(stale, results_root))
    return {item.spec.dirname: item for item in stale}


def set_aside_stale(specs: list[ResolvedTrial], results_root, echo: Callable[[str], None], *, rerun: bool,
                    data_root=None) -> None:
    """Refuse a sweep with stale trials, or with ``rerun`` move each aside (under its lease,
    checking again there) so that it is trained again; a trial another live process holds is
    left to it, and said."""
    fingerprints = LabelFingerprints(data_root)
    stale = check_stale(specs, results_root, rerun=rerun, fingerprints=fingerprints)
    for item in stale.values():
        def still_stale(trial: TrialDir, spec: ResolvedTrial = item.spec) -> str | None:
            record = stored_trial_record(trial)
            return why_stale(spec, record, fingerprints) if record is not None else None

        moved = move_aside_if_damaged(item.trial, results_root, still_stale, aside=STALE_DIR)
        if moved is not None:
            echo(f"{item.trial.path}: stale ({moved[0]}); moved aside to {moved[1]}, trained again")
        elif item.trial.path.is_dir() and still_stale(item.trial) is not None:
            echo(f"{item.trial.path}: stale ({item.why}), but another process holds it: left to it; "
                 f"run again with {RERUN_FLAG} once it has finished")
