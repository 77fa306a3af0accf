"""Every built-in part declares its rule version, in one form (core/rules.py), and a trial's
versions come from one function: a registry-level check, and the declaration's refusals."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import noisybench.datasets as datasets
from noisybench.core.rules import (
    check_declaration,
    recorded_rule_versions,
    rule_difference,
    versions_text,
)
from noisybench.datasets.registry import dataset_rule_declaration, register_dataset
from noisybench.methods import get_method, method_names
from noisybench.methods.base import Method
from noisybench.methods.networks import model_names
from noisybench.methods.networks.registry import model_rule_declaration, register_model
from noisybench.methods.registry import register
from noisybench.methods.rule_versions import rule_versions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def built_ins_only(monkeypatch):
    monkeypatch.setenv("NOISYBENCH_NO_PLUGINS", "1")


def declared_well(version, history) -> bool:
    check_declaration("part", "name", version, history)  # raises TypeError naming what is wrong
    return True


@pytest.mark.parametrize("name", method_names())
def test_every_built_in_method_declares_its_version_and_history(name):
    cls = get_method(name)
    assert "rule_version" in vars(cls) and "rule_history" in vars(cls), \
        f"{cls.__module__}.{cls.__name__} declares no rule_version / rule_history of its own"
    assert declared_well(cls.rule_version, cls.rule_history)


def test_each_method_declares_them_right_under_its_docstring():
    """One place to look, in every methods/*.py class: the docstring, then rule_version and rule_history."""
    offenders = []
    for path in sorted((REPO / "methods").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            registered = isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", "") == "register" for d in node.decorator_list)
            if not registered:
                continue
            names = [getattr(s.targets[0], "id", None) if isinstance(s, ast.Assign) else None for s in node.body[1:3]]
            if names != ["rule_version", "rule_history"]:
                offenders.append(f"{path.name}: class {node.name}")
    assert not offenders, f"rule_version / rule_history not right under the docstring: {offenders}"


@pytest.mark.parametrize("name", model_names())
def test_every_built_in_network_declares_its_version_and_history(name):
    declared = model_rule_declaration(name)
    assert declared is not None, f"register_model({name!r}, ...) declares no rule_version"
    assert declared_well(*declared)


@pytest.mark.parametrize("name", datasets.dataset_names())
def test_every_built_in_dataset_loader_declares_its_version_and_history(name):
    declared = dataset_rule_declaration(name)
    assert declared is not None, f"register_dataset({name!r}, ...) declares no rule_version"
    assert declared_well(*declared)


def test_a_trials_versions_come_from_one_function(monkeypatch):
    assert rule_versions("jocor", "mlp", "digits") == {"method:jocor": 1, "model:mlp": 1, "dataset:digits": 1}
    monkeypatch.setattr(get_method("jocor"), "rule_version", 2)
    assert rule_versions("jocor", "mlp", "digits")["method:jocor"] == 2


@pytest.mark.parametrize("version, history, problem", [
    (0, {}, "int >= 1"), ("2", {1: "a", 2: "b"}, "int >= 1"), (True, {1: "a"}, "int >= 1"),
    (2, {1: "first"}, "each version 1..2"), (1, {1: "two\nlines"}, "one non-empty line"), (1, {1: " "}, "one non-empty"),
])
def test_a_malformed_declaration_is_refused(version, history, problem):
    with pytest.raises(TypeError, match=problem):
        check_declaration("method", "x", version, history)


def test_the_registries_refuse_a_malformed_declaration_and_read_an_undeclared_part_as_1():
    with pytest.raises(TypeError, match="each version 1..2"):
        register_model("badnet", "a network", rule_version=2, rule_history={1: "first"})
    with pytest.raises(TypeError, match="int >= 1"):
        register_dataset("baddata", "a dataset", rule_version=0, rule_history={})

    with pytest.raises(TypeError, match="one non-empty line"):
        @register("badmethod")
        class Bad(Method):
            rule_version = 1
            rule_history = {1: ""}

            @dataclass
            class Hparams:
                pass



def test_a_method_that_declares_no_version_reads_as_1():
    """A plugin's method need not declare one: its package version is in the trial's hash already."""
    from noisybench.methods import registry

    @register("undeclared")
    class Undeclared(Method):
        @dataclass
        class Hparams:
            pass

    try:
        assert rule_versions("undeclared", "mlp", "digits") == \
            {"method:undeclared": 1, "model:mlp": 1, "dataset:digits": 1}
    finally:
        registry._METHODS.pop("undeclared")


def test_a_record_without_versions_reads_as_version_1_of_its_parts():
    old = {"spec": {"method": "coteaching", "dataset": "digits"}, "recipe": {"model": "mlp"}}
    assert recorded_rule_versions(old) == {"method:coteaching": 1, "model:mlp": 1, "dataset:digits": 1}
    new = {**old, "rule_versions": {"method:coteaching": 2, "model:mlp": 1, "dataset:digits": 1}}
    assert recorded_rule_versions(new)["method:coteaching"] == 2
    assert versions_text(recorded_rule_versions(old)) == "method:coteaching=1 model:mlp=1 dataset:digits=1"


def test_a_difference_names_the_part_and_both_versions():
    stored = {"method:standard": 1, "model:mlp": 1, "dataset:digits": 1}
    assert rule_difference(stored, dict(stored)) is None
    assert rule_difference(stored, {**stored, "method:standard": 2}) == \
        "method standard: stored version 1, code version 2"
    assert rule_difference({}, {"model:mlp": 3}) == "model mlp: stored version 1, code version 3"
