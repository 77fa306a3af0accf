"""The rule versions of a trial's parts: ``rule_versions("jocor", "mlp", "digits")`` ->
``{"method:jocor": 1, "model:mlp": 1, "dataset:digits": 1}``, what spec.json records and
bench/staleness.py compares with the stored trials (core/rules.py says what a version is).

On the methods floor, the lowest that sees all three registries.  A part that declares no
version (a plugin's) reads as 1: its package version is in the trial's hash already.
"""
from __future__ import annotations

from noisybench.core.rules import DEFAULT_RULE_VERSION, versions_of
from noisybench.datasets.registry import dataset_rule_declaration
from noisybench.methods.networks.registry import model_rule_declaration
from noisybench.methods.registry import get_method


def rule_version(part: str, name: str) -> int:
    """The version the code of ``part`` ("method", "model" or "dataset") ``name`` declares."""
    if part == "method":
        # A subclass inherits its base's version: the base's rule is part of what it computes.
        return getattr(get_method(name), "rule_version", DEFAULT_RULE_VERSION)
    declared = {"model": model_rule_declaration, "dataset": dataset_rule_declaration}[part](name)
    return declared[0] if declared is not None else DEFAULT_RULE_VERSION


def rule_versions(method: str, model: str, dataset: str) -> dict[str, int]:
    """Every part's version for a trial of ``method`` on network ``model`` (the recipe's) and ``dataset``."""
    return versions_of(method, model, dataset, rule_version)
