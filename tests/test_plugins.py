"""Plugins found by entry point (core/plugins.py), without pip: the installed entry points are faked.

Each fake plugin is a real module written to a temporary directory on sys.path, named by a fake
entry point whose load() imports it, as importlib.metadata's would.  The registries and the
discovery state are restored after each test.  The real round trip (pip install, bench list, a
sweep under every local launcher, a broken plugin) is .ci/plugin_example.sh.
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from noisybench.bench.cli import main
from noisybench.bench.sweep import SweepRequest, build_specs
from noisybench.core import plugins
from noisybench.core.errors import BenchError
from noisybench.core.spec import OMITTED_WHEN_DEFAULT, TrialSpec
from noisybench.datasets import registry as dataset_registry
from noisybench.methods import registry as method_registry
from noisybench.methods.networks import registry as model_registry

FIXTURE_STORE = Path(__file__).parent / "fixtures" / "store_v0_1_0"
_COUNTER = itertools.count()

METHOD_SOURCE = '''
from dataclasses import dataclass

import torch.nn.functional as F

from noisybench.methods.base import Method, StepOutput
from noisybench.methods.registry import register


@register({name!r})
class Fake(Method):
    """A fake plugin method: cross-entropy."""

    @dataclass
    class Hparams:
        scale: float = 1.0  # a fake default

    def __init__(self, hparams, ctx):
        super().__init__(hparams, ctx)
        self.net = ctx.build_network(0)

    def train_step(self, batch, epoch):
        return StepOutput(loss=self.hparams.scale * F.cross_entropy(self.net(batch.images), batch.labels))

    def predict(self, images):
        return self.net(images)
'''


@dataclass
class FakeDist:
    name: str
    version: str

    @property
    def metadata(self) -> dict:
        return {"Name": self.name}


@dataclass
class FakeEntryPoint:
    """What importlib.metadata.EntryPoint offers that discovery uses."""

    name: str
    value: str
    group: str
    dist: FakeDist

    def load(self):
        return importlib.import_module(self.value)


@pytest.fixture
def installed(monkeypatch, tmp_path):
    """installed(source, entry_point=..., package=..., version=..., group=...): a fake plugin."""
    entry_points: list[FakeEntryPoint] = []
    tables = [method_registry._METHODS, dataset_registry._LOADERS, dataset_registry._DESCRIPTIONS,
              model_registry._MODELS, model_registry._DESCRIPTIONS, model_registry._MIN_SIDES]
    saved = [dict(table) for table in tables]
    modules_before = set(sys.modules)
    monkeypatch.setattr(plugins, "_STATE", {})  # discovery starts afresh, and the real state comes back
    monkeypatch.setattr(plugins, "installed_entry_points",
                        lambda group: [ep for ep in entry_points if ep.group == group])
    monkeypatch.setenv(plugins.WARNED_ENV, "")
    monkeypatch.delenv(plugins.DISABLE_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(source: str, entry_point: str, package: str = "noisybench-fake", version: str = "1.0",
                group: str = "noisybench.methods") -> str:
        module = f"nbfake_{entry_point}_{next(_COUNTER)}"
        (tmp_path / f"{module}.py").write_text(source)
        entry_points.append(FakeEntryPoint(entry_point, module, group, FakeDist(package, version)))
        return module

    yield install
    for table, before in zip(tables, saved):
        table.clear()
        table.update(before)
    for name in set(sys.modules) - modules_before:
        if name.startswith("nbfake_"):
            del sys.modules[name]


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


# --- a plugin method is a method ----------------------------------------------------------------

def test_a_plugin_method_is_listed_marked_and_takes_hp(installed, capsys):
    installed(METHOD_SOURCE.format(name="fakeboot"), "fakeboot", version="1.2.3")
    assert "fakeboot" in method_registry.method_names() and "standard" in method_registry.method_names()
    assert method_registry.describe_methods()["fakeboot"] == "A fake plugin method: cross-entropy. [plugin noisybench-fake 1.2.3]"
    assert not method_registry.describe_methods()["standard"].endswith("]")
    assert method_registry.build_hparams("fakeboot", {"scale": "0.5"}).scale == 0.5
    assert main(["list"]) == 0
    out = capsys.readouterr()
    assert "  fakeboot " in out.out and "[plugin noisybench-fake 1.2.3]" in out.out
    assert out.err == ""


def test_a_plugin_trial_is_hashed_with_the_plugin_version(installed):
    installed(METHOD_SOURCE.format(name="fakeboot"), "fakeboot", version="1.0")
    specs = build_specs(SweepRequest(methods="standard,fakeboot", noise="sym:0.4", seeds="1", epochs=1))
    by_method = {spec.method: spec for spec in specs}
    assert by_method["standard"].plugin is None
    assert by_method["fakeboot"].plugin == "noisybench-fake==1.0"
    record = by_method["fakeboot"].to_json()
    assert record["plugin"] == "noisybench-fake==1.0"
    # The same trial under another version of the plugin is another trial, in another directory.
    newer = dataclasses.replace(by_method["fakeboot"], plugin="noisybench-fake==1.1")
    assert newer.hash != by_method["fakeboot"].hash and newer.dirname != by_method["fakeboot"].dirname
    assert TrialSpec.from_json(json.loads(json.dumps(record))) == by_method["fakeboot"]


def test_built_in_hashes_are_unchanged_by_the_plugin_field():
    assert "plugin" in OMITTED_WHEN_DEFAULT
    spec = TrialSpec(dataset="digits", method="standard", noise="sym:0.4", seed=0, protocol="quick")
    assert spec.plugin is None and "plugin" not in spec.to_json()
    # The trials noisybench 0.1.0 wrote keep their names.
    for path in sorted(p for p in FIXTURE_STORE.iterdir() if p.is_dir()):
        record = json.loads((path / "spec.json").read_text())
        old = TrialSpec.from_json(record["spec"])
        assert old.plugin is None and old.hash == record["hash"] and old.dirname == path.name


def test_a_worker_with_another_plugin_version_refuses_the_trial(installed):
    installed(METHOD_SOURCE.format(name="fakeboot"), "fakeboot", version="2.0")
    method_registry.check_trial_plugins("noisybench-fake==2.0", "fakeboot", "digits", "mlp")
    method_registry.check_trial_plugins(None, "fakeboot", "digits", "mlp")  # a spec built by hand
    with pytest.raises(BenchError) as err:
        method_registry.check_trial_plugins("noisybench-fake==1.0", "fakeboot", "digits", "mlp")
    assert "made with noisybench-fake==1.0 but this process has noisybench-fake==2.0" in one_line(err.value)


def test_plugin_datasets_and_models_are_listed_and_in_the_trial_plugins(installed):
    installed("from noisybench.datasets.registry import register_dataset\n"
              "register_dataset('fakedata', 'a fake dataset')(lambda root, download: None)\n",
              "fakedata", package="noisybench-fakedata", version="0.3", group="noisybench.datasets")
    installed("from noisybench.methods.networks.registry import register_model\n"
              "register_model('fakenet', 'a fake network')(lambda classes, shape: None)\n",
              "fakenet", package="noisybench-fakenet", version="0.2", group="noisybench.models")
    installed(METHOD_SOURCE.format(name="fakeboot"), "fakeboot", version="1.0")
    assert dataset_registry.describe_datasets()["fakedata"] == "a fake dataset [plugin noisybench-fakedata 0.3]"
    assert model_registry.describe_models()["fakenet"] == "a fake network [plugin noisybench-fakenet 0.2]"
    assert method_registry.trial_plugins("fakeboot", "fakedata", "fakenet") == \
        "noisybench-fake==1.0,noisybench-fakedata==0.3,noisybench-fakenet==0.2"
    assert method_registry.trial_plugins("standard", "digits", "mlp") is None


def test_a_plugin_imported_before_discovery_is_still_its_package(installed):
    module = installed(METHOD_SOURCE.format(name="early"), "early", version="4.0")
    importlib.import_module(module)  # e.g. a script imports the plugin itself before any registry question
    assert plugins.origin("noisybench.methods", "early").requirement == "noisybench-fake==4.0"
    assert method_registry.trial_plugins("early") == "noisybench-fake==4.0"


def test_discovery_can_be_switched_off(installed, monkeypatch):
    installed(METHOD_SOURCE.format(name="fakeboot"), "fakeboot")
    monkeypatch.setenv(plugins.DISABLE_ENV, "1")
    assert "fakeboot" not in method_registry.method_names()


# --- clashes ------------------------------------------------------------------------------------

def test_a_clash_with_a_built_in_is_one_line_naming_both_packages(installed):
    installed(METHOD_SOURCE.format(name="standard"), "standard", package="noisybench-impostor", version="0.1")
    with pytest.raises(BenchError) as err:
        method_registry.method_names()
    text = one_line(err.value)
    assert text.startswith("method 'standard' is registered twice: by noisybench ")
    assert "(built-in, noisybench.methods.standard)" in text
    assert "plugin noisybench-impostor 0.1 (entry point standard = nbfake_standard_" in text
    assert text.endswith("uninstall one of them or rename the plugin's method")
    with pytest.raises(BenchError, match="registered twice"):  # and on every later question, not only the first
        method_registry.get_method("gce")
    assert main(["list"]) == 2


def test_a_clash_between_two_plugins_names_both(installed):
    installed(METHOD_SOURCE.format(name="twin"), "twin", package="noisybench-first", version="1.0")
    installed(METHOD_SOURCE.format(name="twin"), "twin", package="noisybench-second", version="2.0")
    with pytest.raises(BenchError) as err:
        method_registry.method_names()
    text = one_line(err.value)
    assert "by plugin noisybench-first 1.0" in text and "by plugin noisybench-second 2.0" in text


def test_a_clash_between_two_built_ins_stays_a_bug():
    @dataclass
    class Hparams:
        pass

    with pytest.raises(ValueError, match="registered twice"):
        method_registry.register("standard")(type("Standard2", (), {"Hparams": Hparams, "__module__": "noisybench.methods.x"}))


# --- a plugin that fails to import --------------------------------------------------------------

def test_a_failing_plugin_warns_once_and_the_built_ins_work(installed, capsys):
    installed("raise ImportError('No module named fancy_dependency')", "broken", package="noisybench-broken",
              version="0.0.1")
    installed(METHOD_SOURCE.format(name="fakeboot"), "fakeboot")
    names = method_registry.method_names()
    assert "standard" in names and "fakeboot" in names and "broken" not in names
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("bench: warning: plugin noisybench-broken 0.0.1 (entry point broken = nbfake_broken_")
    assert "failed to import and is left out (ImportError: No module named fancy_dependency)" in err
    method_registry.get_method("standard")
    assert capsys.readouterr().err == ""  # once per process
    with pytest.raises(BenchError) as asked:
        method_registry.get_method("broken")
    text = one_line(asked.value)
    assert text.startswith("unknown method 'broken'; choose from: ")
    assert "it comes from plugin noisybench-broken 0.0.1" in text and "fancy_dependency" in text


def test_a_failing_plugins_method_is_exit_2_and_the_others_run(installed, capsys, tmp_path):
    installed("raise RuntimeError('plugin bug\\nsecond line')", "broken", package="noisybench-broken")
    assert main(["list"]) == 0
    assert "(RuntimeError: plugin bug);" in capsys.readouterr().err  # the first line of the message only
    results = tmp_path / "runs"
    assert main(["run", "--methods", "broken", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench: error: unknown method 'broken'") and "noisybench-broken" in err
    assert not results.exists()
    assert main(["run", "--methods", "standard", "--epochs", "1", "--results", str(results)]) == 0


def test_a_half_registered_failing_plugin_leaves_nothing_behind(installed, capsys):
    installed(METHOD_SOURCE.format(name="halfway") + "\nraise ImportError('fails after registering')\n",
              "halfway", package="noisybench-halfway")
    assert "halfway" not in method_registry.method_names()
    assert plugins.origin("noisybench.methods", "halfway") is None
    assert "fails after registering" in capsys.readouterr().err


def test_the_warning_is_not_repeated_in_worker_processes(installed, capsys, monkeypatch):
    """A sweep's workers inherit the environment, where the first warning is noted."""
    installed("raise ImportError('nope')", "broken", package="noisybench-broken")
    monkeypatch.setenv(plugins.WARNED_ENV, "noisybench.methods:broken")
    method_registry.method_names()
    assert capsys.readouterr().err == ""
    assert "broken" in {p.entry_point for p in plugins.failures("noisybench.methods")}


def test_two_versions_of_a_plugin_are_two_rows_of_a_table():
    import pandas as pd

    from noisybench.results.aggregate import keep_plugin_versions_apart

    frame = pd.DataFrame({"method": ["bootstrap", "bootstrap", "standard"],
                          "plugin": ["noisybench-bootstrap==0.1.0", "noisybench-bootstrap==0.2.0", None]})
    assert list(keep_plugin_versions_apart(frame)["method"]) == [
        "bootstrap {noisybench-bootstrap==0.1.0}", "bootstrap {noisybench-bootstrap==0.2.0}", "standard"]
    one_version = frame.iloc[[0, 2]]
    assert list(keep_plugin_versions_apart(one_version)["method"]) == ["bootstrap", "standard"]
