"""Command-line habits researchers bring from other tools: no prefix matching, defaults in --help,
a --version, a hint for space-separated lists, a run that says where its results are, and
spec.json records of what produced a trial."""
from __future__ import annotations

import json

import pytest

from noisybench.bench.cli import main
from noisybench.core import __version__

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_prefix_of_an_option_is_not_taken_for_it(capsys, tmp_path):
    """`--seed 3` once ran seeds 0-2 as if it were `--seeds 3`."""
    code, _, err = run_cli(["run", "--seed", "3", "--results", str(tmp_path / "r")], capsys)
    assert code == 2 and err.count("\n") == 1 and "unrecognized arguments: --seed 3" in err
    assert not (tmp_path / "r").exists()


def test_space_separated_lists_get_a_hint(capsys, tmp_path):
    code, _, err = run_cli(["run", "--methods", "standard", "gce", "--results", str(tmp_path / "r")], capsys)
    assert code == 2 and err.count("\n") == 1 and "comma-separated" in err and "standard,gce" in err


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for text in ("--seeds SEEDS", "(default: 1)", "(default: digits)", "(default: sym:0.4)", "--precision"):
        assert text in " ".join(out.split()), text


def every_parser(parser):
    """``parser`` and every sub-command's parser below it."""
    import argparse

    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from every_parser(sub)


def test_help_says_each_default_once():
    """A help text that speaks of its default gets no second one from argparse ("(default ./runs)
    (default: runs)"), and an unset option or a flag gets none ("(default: None)", --no-wait's
    "(default: True)")."""
    from noisybench.bench.cli import build_parser

    parsers = list(every_parser(build_parser()))
    assert len(parsers) > 10
    for parser in parsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.help:
                continue
            said = formatter._get_help_string(action)
            if "default" in action.help:
                assert said == action.help, f"{parser.prog} {action.option_strings}: {said}"
        flat = " ".join(parser.format_help().split())
        for unset in ("(default: None)", "(default: [])", "(default: True)", "(default: False)"):
            assert unset not in flat, f"{parser.prog}: {unset}"
    flat = " ".join(build_parser()._subparsers._group_actions[0].choices["run"].format_help().split())
    assert "results directory (default: ./runs) --" in flat and "every N epochs (default 1) --" in flat, flat


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"noisybench {__version__}")


def test_a_run_names_its_results_and_records_what_produced_it(capsys, tmp_path):
    results = tmp_path / "runs"
    code, out, _ = run_cli(["run", "--epochs", "2", "--results", str(results), "--device", "cpu"], capsys)
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert "[1/1] standard" in out and "left, about" not in out  # nothing left after the only trial
    assert last.startswith(f"results in {results.resolve()} (1 trials); the sweep took ") and "bench table" in last
    (record,) = [json.loads(p.read_text()) for p in results.glob("*/spec.json")]
    assert record["noisybench"]["version"] == __version__ and "git_commit" in record["noisybench"]
    assert record["cpu_threads"] == 1
    assert record["arithmetic"] == {"precision": "fp32", "memory_format": "contiguous", "fused": False,
                                    "autotune": False}


@pytest.mark.parametrize("method", __import__("noisybench.methods", fromlist=["method_names"]).method_names())
def test_bench_list_hp_shows_every_hyperparameter_with_its_default_and_source(method, capsys):
    """The project's rule, checked for every registered method: each default says where it comes from."""
    import dataclasses

    from noisybench.methods import get_method

    assert main(["list", "--hp", method]) == 0
    out = capsys.readouterr().out.splitlines()
    fields = dataclasses.fields(get_method(method).Hparams)
    assert out[0].startswith(f"{method} hyperparameters") and len(out) == 1 + len(fields)
    for field, line in zip(fields, out[1:]):
        text, _, source = line.strip().partition("  ")
        assert text.startswith(f"{field.name}: ") and f"= {field.default!r}" in text
        assert source.strip(), f"{method}.{field.name} has no source comment"


def test_bench_list_hp_of_an_unknown_method_is_one_line(capsys):
    assert main(["list", "--hp", "nope"]) == 2
    out, err = capsys.readouterr()
    assert not out and err.count("\n") == 1 and "unknown method 'nope'" in err


def test_a_sweep_shows_what_is_left_and_how_long_it_may_take(capsys, tmp_path):
    assert main(["run", "--seeds", "3", "--epochs", "2", "--results", str(tmp_path / "r"), "--device", "cpu"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert "[2 left, about " in lines[0] and "[1 left, about " in lines[1] and "left" not in lines[2]


def test_a_results_path_with_a_tilde_is_the_home_directory_for_every_command(tmp_path, monkeypatch, capsys):
    """`--results=~/x` (the shell leaves a ~ after = unexpanded) must mean $HOME/x, for bench run
    and for every command that reads the store, never a folder named ~ in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--methods", "standard", "--noise", "sym:0.4", "--seeds", "1", "--epochs", "1",
                 "--results=~/runs"]) == 0
    assert (tmp_path / "home" / "runs").is_dir() and not (tmp_path / "~").exists()
    capsys.readouterr()
    for argv in (["table"], ["classes"], ["status"], ["verify"]):
        assert main([*argv, "--results", "~/runs"]) in (0, 1), argv
        assert "no such directory" not in capsys.readouterr().err
