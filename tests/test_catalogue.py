"""`bench --help` and `bench list` answer without importing torch (lazy imports; the built-in
methods and models read from their source by bench/catalogue.py), and say exactly what the
registries say.  Whether torch was imported is checked, not how long it took: speed is for
benchmarks, and a timed test is flaky on a busy machine."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from noisybench.bench import catalogue
from noisybench.bench.cli import main
from noisybench.bench.trainer.protocols import PROTOCOLS
from noisybench.methods import describe_methods
from noisybench.methods.networks import describe_models


@pytest.fixture(autouse=True)
def built_ins_only(monkeypatch):
    """These tests are about the built-ins: an installed plugin (CI installs the example later) would
    make `bench list` import, as it should."""
    monkeypatch.setenv("NOISYBENCH_NO_PLUGINS", "1")


def test_the_catalogue_reads_what_the_registries_hold():
    assert catalogue.builtin_methods() == describe_methods()
    assert catalogue.builtin_models() == describe_models()
    assert catalogue.builtin_protocols() == PROTOCOLS


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["list"], ["table", "--help"], ["speed", "--help"]])
def test_the_quick_commands_never_import_torch(argv):
    probe = ("import sys\nfrom noisybench.bench.cli import main\n"
             f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
             "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NOISYBENCH_NO_PLUGINS": "1"})
    assert done.stderr.strip().splitlines()[-1] == "no torch", done.stderr


def test_with_plugins_installed_list_imports_and_prints_the_same_builtins(monkeypatch, capsys):
    main(["list"])
    from_source = capsys.readouterr().out
    monkeypatch.setattr(catalogue, "plugins_installed", lambda: True)
    main(["list"])
    assert capsys.readouterr().out == from_source
