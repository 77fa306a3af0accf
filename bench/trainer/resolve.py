"""The resolution step: a TrialSpec becomes a ResolvedTrial, once, before anything is hashed or run.

A spec names a trial (its hash names the directory); what the trial trains with -- the recipe of
its protocol, every hyperparameter with every default filled (those that depend on the noise rate,
the dataset, the protocol or the epochs included), the validation share and the epoch budget -- is
decided here and nowhere else.  The sweep resolves every trial before it writes anything; the
launchers hand the resolved trials to the trial function; the trainer builds from them; spec.json
records them; the check of stored trials compares against them.  Nothing resolves again.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

import noisybench.datasets as datasets
import noisybench.noise as noise
from noisybench.bench.trainer.protocols import Recipe, resolve_recipe
from noisybench.core.spec import TrialSpec
from noisybench.methods.base import TrialFacts
from noisybench.methods.registry import resolve_hparams
from noisybench.methods.rule_versions import rule_versions


@dataclass(frozen=True)
class ResolvedTrial:
    """One trial with everything that decides its numbers resolved (plain data: picklable for the
    inline launcher's packed processes and the local and slurm launchers' jobs).  It answers to the
    spec's names (``dirname``, ``label()`` ...), so the launchers and the store treat it as the trial
    it is."""

    spec: TrialSpec
    recipe: Recipe
    filled_hparams: object  # the method's Hparams, every default filled (``hparams`` is the spec's --hp text)
    facts: TrialFacts  # dataset, protocol, noise kind and nominal rate, classes, the protocol's epochs
    validation_fraction: float  # held out of the training set (the larger of protocol's and method's)
    epoch_budget: int  # the most epochs the trainer runs (Me-Momentum's rounds may use more than the protocol's)
    hparam_sources: Mapping[str, str] = field(default_factory=dict)  # each filled field -> its source
    # The rule_version of every part it trains with ({"method:jocor": 1, "model:mlp": 1, ...}): a stored
    # trial of other versions is stale (bench/staleness.py).
    rule_versions: Mapping[str, int] = field(default_factory=dict)

    @property
    def dirname(self) -> str:
        return self.spec.dirname

    @property
    def hash(self) -> str:
        return self.spec.hash

    def label(self) -> str:
        return self.spec.label()

    def __getattr__(self, name: str):
        # The spec's fields (method, noise, seed, dataset, hparams ...) read through, as a spec's would.
        if name.startswith("__") or name == "spec":
            raise AttributeError(name)
        return getattr(self.spec, name)

    def hparams_json(self) -> dict:
        return dataclasses.asdict(self.filled_hparams)

    def record(self) -> dict:
        """The resolved part of spec.json (the trainer adds the noise it drew and the run's provenance)."""
        return {
            "spec": self.spec.to_json(),
            "hash": self.spec.hash,
            "recipe": self.recipe.to_json(),
            "hparams": self.hparams_json(),
            **({"hparams_filled": dict(self.hparam_sources)} if self.hparam_sources else {}),
            "rule_versions": dict(self.rule_versions),
        }


def resolve_trial(spec: TrialSpec, dataset=None, data_root=None) -> ResolvedTrial:
    """Resolve ``spec`` on ``dataset`` (loaded from ``data_root`` when None: the number of classes and
    the nominal noise rate are facts of the data)."""
    if dataset is None:
        dataset = datasets.load(spec.dataset, data_root)
    recipe = resolve_recipe(spec.protocol, spec.dataset, spec.method, model=spec.model, epochs=spec.epochs,
                            batch_size=spec.batch_size)
    noise_spec = noise.parse_noise(spec.noise)
    facts = TrialFacts(dataset=spec.dataset, protocol=spec.protocol, noise_kind=noise_spec.kind,
                       noise_rate=noise.nominal_rate(noise_spec, dataset), num_classes=dataset.num_classes,
                       epochs=recipe.epochs)
    return resolve_with(spec, recipe, facts)


def resolve_with(spec: TrialSpec, recipe: Recipe, facts: TrialFacts) -> ResolvedTrial:
    """Resolve ``spec`` from its recipe and facts already known (the sweep knows them per cell)."""
    resolution = resolve_hparams(spec.method, dict(spec.hparams), dict(recipe.method_hparams), facts)
    return ResolvedTrial(
        spec=spec, recipe=recipe, filled_hparams=resolution.hparams, facts=facts,
        # Validation is held out when the protocol or the method asks (Me-Momentum's data_percent=0.9):
        # the larger fraction wins, and the split depends on (dataset, noise, seed) and that fraction only.
        validation_fraction=max(recipe.val_fraction, resolution.validation_fraction),
        epoch_budget=resolution.epoch_budget if resolution.epoch_budget is not None else recipe.epochs,
        hparam_sources=dict(resolution.sources),
        rule_versions=rule_versions(spec.method, recipe.model, spec.dataset),
    )


def as_resolved(trial, dataset=None, data_root=None) -> ResolvedTrial:
    """A ResolvedTrial as it is; a bare TrialSpec (a hand-built one: tests, `bench speed`) resolved once."""
    return trial if isinstance(trial, ResolvedTrial) else resolve_trial(trial, dataset, data_root)
