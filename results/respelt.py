"""Trials of an older store named by a default spelt out in --hp (`bench verify` names them).

Since every default is filled before a trial is hashed (bench/trainer/resolve.py), a --hp value equal
to what the trial resolves to anyway no longer names it: ``coteaching[forget_rate=0.4]`` at sym:0.4
is ``coteaching``.  A store written before holds such a trial under its old name; its numbers stay
good (and readable, as their own table row), but `bench run` trains the configuration under the
name it has now.  This module finds them from their records alone, without loading any data.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec
from noisybench.results.store import DamagedTrial, TrialDir


@dataclass(frozen=True)
class RespeltTrial:
    trial: TrialDir
    spec: TrialSpec  # as stored
    now: TrialSpec  # the same configuration as a sweep names it today

    def advice(self, root) -> str:
        spelt = ",".join(f"{k}={v}" for k, v in self.spec.hparams if (k, v) not in self.now.hparams)
        target = Path(root) / self.now.dirname
        where = ("which holds it already: the two are one configuration, keep one" if target.exists() else
                 "where `bench run` trains it anew")
        return (f"{self.trial.path.name} spells out {self.spec.method}'s default {spelt}, which no longer names a "
                f"trial: the same configuration is {self.now.dirname}, {where}; move {self.trial.path.name} out of "
                f"the results directory so that tables do not show it as a second row")


def respelt_trial(trial: TrialDir) -> RespeltTrial | None:
    """The trial's record named by today's canonical spelling, when that differs from its own."""
    try:
        record = trial.read_spec()
    except DamagedTrial:
        return None
    spec = TrialSpec.from_json(record.get("spec") or {}) if record.get("spec") else None
    recipe, noise = record.get("recipe"), record.get("noise") or {}
    if spec is None or not spec.hparams or recipe is None or "kind" not in noise:
        return None
    # Only for a trial with --hp values: the method registry imports torch.
    from noisybench.methods.base import TrialFacts
    from noisybench.methods.registry import canonical_given

    facts = TrialFacts(dataset=spec.dataset, protocol=spec.protocol, noise_kind=noise["kind"],
                       noise_rate=noise.get("nominal_rate"), num_classes=noise.get("num_classes"),
                       epochs=int(recipe["epochs"]))
    defaults = {k: v for k, v in (recipe.get("method_hparams") or [])}
    try:
        given = canonical_given(spec.method, dict(spec.hparams), defaults, facts)
    except (BenchError, TypeError, ValueError):  # a method or field this version no longer has
        return None
    if given == spec.hparams:
        return None
    return RespeltTrial(trial, spec, replace(spec, hparams=given))
