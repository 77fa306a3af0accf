"""Sweeps as data: hyperparameter grids on the command line, a TOML sweep file that flags
override, and a dry run that lists the trials and what the store already holds of them."""
from __future__ import annotations

import pytest

from noisybench.bench.cli import main
from noisybench.bench.sweep import SweepRequest, build_specs, hp_grid, parse_hp

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_a_grid_expands_to_the_product_of_its_values():
    hp = parse_hp(["lend.k=2,4,8", "lend.gamma=1,3", "coteaching.forget_rate=0.2,coteaching.num_gradual=5"],
                  ["lend", "coteaching"])
    assert hp == {"lend": {"k": ["2", "4", "8"], "gamma": ["1", "3"]},
                  "coteaching": {"forget_rate": ["0.2"], "num_gradual": ["5"]}}
    assert len(hp_grid(hp["lend"])) == 6 and {"k": "8", "gamma": "1"} in hp_grid(hp["lend"])
    assert hp_grid({}) == [{}]
    specs = build_specs(SweepRequest(methods="standard,lend", noise="sym:0.4,pair:0.35", seeds="2",
                                     hp=("lend.k=2,4,8", "lend.gamma=1,3")))
    assert len(specs) == (1 + 6) * 2 * 2
    # k=8 and gamma=3 are LEND's defaults, so its trials hold no override: lend[k=8] is plain lend, one trial.
    assert {dict(s.hparams).get("k") for s in specs if s.method == "lend"} == {"2", "4", None}
    assert {dict(s.hparams).get("gamma") for s in specs if s.method == "lend"} == {"1.0", None}


@pytest.mark.parametrize("hp, words", [
    (["lend.k=2,4,2"], "listed twice"),
    (["lend.k=2", "lend.k=4"], "given twice"),
    (["lend.k=two,4"], "expected an integer"),
])
def test_a_bad_grid_is_one_line(tmp_path, capsys, hp, words):
    argv = ["run", "--methods", "lend", "--epochs", "1", "--results", str(tmp_path / "r")]
    for item in hp:
        argv += ["--hp", item]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err
    assert not (tmp_path / "r").exists()


SWEEP = """
methods = ["standard", "gce"]
noise = ["sym:0.4"]
seeds = 2
epochs = 2
results = "{results}"
device = "cpu"

[hp.gce]
q = [0.5, 0.9]
truncated = false
"""


def test_a_sweep_file_runs_and_a_flag_overrides_it(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP.format(results=tmp_path / "runs"))
    assert main(["run", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"6 trials in {tmp_path / 'runs'} (6 not started)")
    assert "gce[q=0.9]" in out  # truncated=false is GCE's default, dropped before hashing
    assert main(["run", "--config", str(config), "--seeds", "1"]) == 0  # the flag wins: seed 0 only
    capsys.readouterr()
    assert main(["run", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(3 done, 3 not started)" in out and out.count("   done\n") == 3


@pytest.mark.parametrize("text, words", [
    ("colour = 'red'", "unknown key 'colour'"),
    ("epochs = 'ten'", "not a valid --epochs value"),
    ("precision = 'fp16'", "choose one of"),
    ("[launcher]\nqueue = 'x'", "unknown launcher key 'queue'"),
    ("methods = [", "not valid TOML"),
    ("[hp]\nlend = 3", "one table per method"),
])
def test_a_bad_sweep_file_is_one_line(tmp_path, capsys, text, words):
    config = tmp_path / "sweep.toml"
    config.write_text(text + "\n")
    assert main(["run", "--config", str(config), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and str(config) in err
    assert not (tmp_path / "r").exists()


def test_a_missing_sweep_file_is_one_line(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "none.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
