"""Tables for a paper: LaTeX that plain pdflatex compiles (math-mode symbols, booktabs named, a
\\label), and --columns / --methods / --noise / --split choosing what a table shows, in order."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from noisybench.bench.cli import main

OLD_STORE = Path(__file__).parent / "fixtures" / "store_v0_1_0"  # standard, coteaching x sym:0.4, pair:0.35


def table(capsys, *argv) -> str:
    assert main(["table", "--results", str(OLD_STORE), *argv]) == 0
    return capsys.readouterr().out


def test_latex_has_no_text_pdflatex_cannot_print(capsys):
    tex = table(capsys, "--format", "latex")
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert not re.search(r"[^\x00-\x7f]", body), "non-ASCII text in the LaTeX"
    assert "<" not in body.replace("$<$", ""), "a text-mode < prints as an inverted exclamation mark"
    assert tex.startswith("% noisybench table; needs \\usepackage{booktabs}")
    assert tex.count("\\label{tab:digits-quick-epochs-12}") == 1
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1


def test_columns_methods_and_noise_choose_and_order_what_is_shown(capsys):
    out = table(capsys, "--columns", "last", "--methods", "coteaching,standard", "--noise", "pair:0.35")
    header = next(line for line in out.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["Method", "pair:0.35 Last"]
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "Method" not in line]
    assert rows == ["coteaching", "standard"]  # the order given, not standard first
    csv = table(capsys, "--format", "csv", "--methods", "standard")
    assert csv.count("\n") == 3 and ",coteaching," not in csv


def test_a_wide_grid_splits_into_one_table_per_noise_family(capsys):
    tex = table(capsys, "--format", "latex", "--split", "noise-kind")
    assert tex.count("\\begin{table}") == 2
    assert "\\label{tab:digits-quick-epochs-12-sym}" in tex and "\\label{tab:digits-quick-epochs-12-pair}" in tex


@pytest.mark.parametrize("argv, words", [
    (["--columns", "best,median"], "'median' is not one of"),
    (["--methods", "lend"], "lend has no finished trial"),
    (["--noise", "sym:0.2"], "sym:0.2 has no finished trial"),
])
def test_a_choice_the_store_cannot_show_is_one_line(capsys, argv, words):
    assert main(["table", "--results", str(OLD_STORE), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (the token checks above run)")
def test_the_latex_compiles_under_plain_pdflatex(capsys, tmp_path):
    tex = table(capsys, "--format", "latex", "--split", "noise-kind")
    document = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(document)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "t.pdf").exists()
    log = (tmp_path / "t.log").read_text(errors="replace")
    assert "Missing character" not in log
