"""`bench table --compare-paper` against the LEND paper's Tables 1-3: the published numbers, the
difference and the verdict, on a fabricated cifar100 store whose accuracies are known exactly.

Each fabricated trial has 11 epochs: epoch 1 at its Best, epochs 2-11 (the last ten) at its
Last, so Best and Last are the numbers written here and nothing else.
"""
from __future__ import annotations

import io
import json
import math
import shutil
import subprocess

import pandas as pd
import pytest
from scipy import stats

from noisybench.bench.cli import main
from noisybench.core.spec import TrialSpec
from noisybench.results.reference import load_reference
from noisybench.results.verdict import CONSISTENT, HIGHER, LOWER, NOT_JUDGED, judge, welch_degrees_of_freedom

from helpers import finish_trial

PAPER = "Zhang, Shen, Yang, Gong"


def write_trial(root, dataset, method, noise, seed, best, last, protocol="lend-paper", hparams=()):
    """A finished trial whose Best is ``best`` and Last is ``last`` (percent)."""
    spec = TrialSpec(dataset=dataset, method=method, noise=noise, seed=seed, protocol=protocol, hparams=hparams)
    path = root / spec.dirname
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"spec": spec.to_json(), "hash": spec.hash}))
    with open(path / "metrics.jsonl", "w") as f:
        for epoch, acc in enumerate([best] + [last] * 10, 1):
            f.write(json.dumps({"epoch": epoch, "test_acc": acc / 100, "train_loss": 1.0, "seconds": 0.1}) + "\n")
    finish_trial(path)


# (noise, method, hparams): [(best, last) per seed]
CELLS = {
    ("sym:0.4", "lend", ()): [(52.4, 46.0), (52.6, 46.2), (52.8, 46.4)],  # Best 52.6 vs 52.71; Last 46.2 vs 48.73
    ("pair:0.3", "lend", ()): [(55.5, 45.3), (55.7, 45.5), (55.9, 45.7)],  # Best 55.7 vs 54.32; Last 45.5 vs 45.42
    ("pair:0.3", "standard", ()): [(35.0, 34.0)],  # one seed: not judged
    ("sym:0.4", "lend", (("k", 4),)): [(52.0, 48.0), (52.2, 48.2)],  # hp override: another recipe, not judged
    ("sym:0.4", "self_learning", ()): [(50.0, 49.0), (50.2, 49.2)],  # not in the paper's tables
    ("pair:0.3", "coteaching", ()): [(40.0, 39.5), (40.4, 39.9)],  # the paper's "Co-teaching"
}


@pytest.fixture
def store(tmp_path):
    for (noise, method, hparams), seeds in CELLS.items():
        for seed, (best, last) in enumerate(seeds):
            write_trial(tmp_path, "cifar100", method, noise, seed, best, last, hparams=hparams)
    return tmp_path


def expected_bound(ours: list[float], published_std: float, published_n: int = 5, rounding: float = 0.005) -> float:
    """The verdict's bound computed here from first principles: Welch's two-sided 5% critical
    value times the combined standard error, plus half the published rounding unit."""
    n, s = len(ours), pd.Series(ours).std(ddof=1)
    a, b = published_std ** 2 / published_n, s ** 2 / n
    nu = (a + b) ** 2 / (a ** 2 / (published_n - 1) + b ** 2 / (n - 1))
    return stats.t.ppf(0.975, nu) * math.sqrt(a + b) + rounding


def comparison_csv(store, capsys, *argv) -> pd.DataFrame:
    assert main(["table", "--results", str(store), "--compare-paper", "--format", "csv", *argv]) == 0
    numbers = ("measured_mean", "measured_std", "published_std", "published_n", "difference", "bound")
    return pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False,
                       na_values={column: [""] for column in numbers})


def row(frame, noise, method, metric):
    match = frame[(frame.noise == noise) & (frame.method == method) & (frame.metric == metric)]
    assert len(match) == 1, (noise, method, metric)
    return match.iloc[0]


def test_the_lend_paper_tables_are_all_in_the_reference_with_their_source():
    reference = load_reference()
    lend = reference[reference.file == "lend_paper_tables.csv"]
    assert len(lend) == 36 + 36 + 6  # Tables 1 and 2: 6 methods x 3 rates x Best/Last; Table 3: 6 Last
    assert lend.source.str.startswith(PAPER).all() and (lend.n == 5).all()
    assert set(lend.method) == {"standard", "coteaching", "gce", "jocor", "sigua", "lend"}
    assert dict(zip(lend.method, lend.method_in_paper))["coteaching"] == "Co-teaching"
    cifar, animal = lend[lend.dataset == "cifar100"], lend[lend.dataset == "animal10n"]
    assert (cifar.bench_protocol == "lend-paper").all() and (animal.bench_protocol == "").all()
    assert set(animal.metric) == {"last"} and set(animal.noise) == {"real"}
    assert set(lend[lend.table == "Table 2"].noise) == {"pair:0.2", "pair:0.3", "pair:0.4"}  # next-class flips
    cell = lend[(lend.noise == "sym:0.4") & (lend.method == "lend") & (lend.metric == "best")].iloc[0]
    assert (cell.value, cell["std"], cell.table) == (52.71, 0.21, "Table 1")
    slip = lend[(lend.noise == "pair:0.2") & (lend.method == "lend") & (lend.metric == "last")].iloc[0]
    assert slip.value == 54.32 and "typesetting slip" in slip.note
    assert lend[lend.dataset == "animal10n"].value_decimals.eq(1).all()  # printed as 76.4: known to +-0.05


def test_verdicts_on_a_fabricated_cifar100_store(store, capsys):
    frame = comparison_csv(store, capsys)
    # sym:0.4 LEND Best: 52.6 +- 0.2 (n=3) against 52.71 +- 0.21 (n=5): within the bound.
    best = row(frame, "sym:0.4", "lend", "best")
    assert (best.published, best.published_std, best.published_n) == (52.71, 0.21, 5)
    assert best.difference == pytest.approx(52.6 - 52.71, abs=1e-4)
    assert best.bound == pytest.approx(expected_bound([52.4, 52.6, 52.8], 0.21), abs=1e-4)
    assert (best.verdict, best.judged_by) == (CONSISTENT, "welch")
    # sym:0.4 LEND Last: 46.2 against 48.73 -- far outside both spreads: judged lower.
    last = row(frame, "sym:0.4", "lend", "last")
    assert last.difference == pytest.approx(46.2 - 48.73, abs=1e-4) and last.verdict == LOWER
    assert last.bound == pytest.approx(expected_bound([46.0, 46.2, 46.4], 0.17), abs=1e-4)
    assert abs(last.difference) > last.bound
    # pair:0.3 (the paper's "asymmetric 30%"): Best 55.7 vs 54.32 higher, Last 45.5 vs 45.42 consistent.
    assert row(frame, "pair:0.3", "lend", "best").verdict == HIGHER
    assert row(frame, "pair:0.3", "lend", "best").difference == pytest.approx(55.7 - 54.32, abs=1e-4)
    assert row(frame, "pair:0.3", "lend", "last").verdict == CONSISTENT
    # One seed: the difference is shown, nothing is judged.
    single = row(frame, "pair:0.3", "standard", "best")
    assert single.difference == pytest.approx(35.0 - 35.53, abs=1e-4)
    assert (single.verdict, single.judged_by) == (NOT_JUDGED, "n < 2") and math.isnan(single.bound)
    # The same method with a changed hyperparameter is another recipe.
    override = row(frame, "sym:0.4", "lend[k=4]", "best")
    assert (override.verdict, override.judged_by) == (NOT_JUDGED, "recipe differs")
    assert "hyperparameter overrides" in override.protocol_differs
    assert not (frame.method == "self_learning").any()  # no published number: no row
    assert list(frame.columns[:6]) == ["dataset", "protocol", "noise", "method", "metric", "n"]


def test_markdown_shows_the_published_number_the_difference_and_the_rule(store, capsys):
    assert main(["table", "--results", str(store), "--compare-paper"]) == 0
    out = capsys.readouterr().out
    assert out.index("| Method") < out.index("Published numbers on cifar100")  # measured table first
    lines = [line for line in out.splitlines() if line.startswith("| sym:0.4  | lend ")]
    best = next(line for line in lines if "| Best " in line)
    assert "52.60 ± 0.20" in best and "52.71 ± 0.21" in best and "-0.11" in best and "consistent" in best
    assert "3 / 5" in best and "[1] Table 1" in best
    last = next(line for line in lines if "| Last " in line)
    assert "-2.53" in last and "lower (beyond ±0.40)" in last and last.count("|") == 11  # no pipe in a cell
    assert "not judged: n < 2" in out and "not judged: recipe differs" in out
    assert "Compared: measured Best with published Best, measured Last with published Last" in out
    assert "Welch's t-test" in out and "1.0 point" in out
    assert f"[1] {PAPER}" in out and "next-class flipping" in out
    assert "No published number for: cifar100 sym:0.4 self_learning." in out
    assert "coteaching (Co-teaching)" in out  # the paper's name beside ours where it differs
    assert "| gce " not in out and "sym:0.6" not in out  # only measured cells are compared


def test_methods_and_noise_choose_the_compared_cells_too(store, capsys):
    frame = comparison_csv(store, capsys, "--noise", "pair:0.3", "--methods", "lend")
    assert set(frame.noise) == {"pair:0.3"} and set(frame.method) == {"lend"}


def test_a_published_number_without_std_falls_back_to_the_stated_tolerance():
    ours = judge(92.0, 0.3, 3, 91.68, None, None, 2)
    bound = stats.t.ppf(0.975, 2) * 0.3 / math.sqrt(3) + 1.0 + 0.005
    assert ours.rule == "tolerance" and ours.bound == pytest.approx(bound) and ours.verdict == CONSISTENT
    assert judge(94.0, 0.3, 3, 91.68, None, None, 2).verdict == HIGHER


@pytest.mark.parametrize("ours_mean", [51.9, 52.2, 52.4, 52.5, 52.9, 53.1, 53.4])
def test_the_verdict_is_welchs_two_sided_test_at_five_percent(ours_mean):
    """With the rounding term negligible, consistent <=> Welch's two-sided p >= 0.05."""
    verdict = judge(ours_mean, 0.35, 4, 52.71, 0.21, 5, published_decimals=12)
    p = stats.ttest_ind_from_stats(ours_mean, 0.35, 4, 52.71, 0.21, 5, equal_var=False).pvalue
    assert (verdict.verdict == CONSISTENT) == (p >= 0.05)
    assert welch_degrees_of_freedom(0.21 ** 2, 5, 0.35 ** 2, 4) == pytest.approx(
        (0.21 ** 2 / 5 + 0.35 ** 2 / 4) ** 2 / ((0.21 ** 2 / 5) ** 2 / 4 + (0.35 ** 2 / 4) ** 2 / 3))


def test_animal10n_is_shown_but_not_judged_because_no_protocol_reproduces_its_recipe(tmp_path, capsys):
    for seed, (best, last) in enumerate([(77.0, 76.2), (77.4, 76.6)]):
        write_trial(tmp_path, "animal10n", "lend", "real", seed, best, last, protocol="plc-paper")
    frame = comparison_csv(tmp_path, capsys)
    cell = row(frame, "real", "lend", "last")
    assert (cell.published, cell.difference) == (76.4, pytest.approx(0.0, abs=1e-4))
    assert (cell.verdict, cell.judged_by) == (NOT_JUDGED, "recipe differs")
    assert "no noisybench protocol reproduces" in cell.protocol_differs


def test_latex_comparison_has_no_text_pdflatex_cannot_print(store, capsys, tmp_path):
    assert main(["table", "--results", str(store), "--compare-paper", "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert "\\label{tab:compare-cifar100-lend-paper}" in tex and "$-2.53$" in tex
    assert not [ch for ch in body if ord(ch) > 127], "non-ASCII text in the LaTeX"
    assert "|" not in body.replace("$|d| \\le", ""), "a text-mode | prints as an em dash"
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (the token checks above ran)")
    document = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(document)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "Missing character" not in (tmp_path / "t.log").read_text(errors="replace")


if __name__ == "__main__":  # the store of the results/README.md example: python tests/test_compare_paper.py DIR
    import sys
    from pathlib import Path

    target = Path(sys.argv[1])
    for (noise, method, hparams), seeds in CELLS.items():
        for seed, (best, last) in enumerate(seeds):
            write_trial(target, "cifar100", method, noise, seed, best, last, hparams=hparams)
    print(f"wrote {sum(len(seeds) for seeds in CELLS.values())} fabricated finished trials under {target}")


def test_fashion_mnist_rows_of_causalnl_are_shown_and_not_judged(tmp_path, capsys):
    """CausalNL's CE and Co-teaching rows meet causalnl-paper trials at inst:R: shown beside them
    with the difference, never judged, since how those baseline rows were trained is unpublished."""
    for seed, (best, last) in enumerate([(90.0, 84.0), (90.2, 84.4)]):
        write_trial(tmp_path, "fashion-mnist", "standard", "inst:0.4", seed, best, last, protocol="causalnl-paper")
        write_trial(tmp_path, "fashion-mnist", "coteaching", "inst:0.4", seed, best + 1, last + 5,
                    protocol="causalnl-paper")
    frame = comparison_csv(tmp_path, capsys)
    standard = row(frame, "inst:0.4", "standard", "last")
    assert standard.published == 84.22 and standard.published_std == 0.35 and standard.published_n == 5
    assert standard.measured_mean == pytest.approx(84.2) and standard.difference == pytest.approx(84.2 - 84.22)
    assert standard.verdict == NOT_JUDGED and "no noisybench protocol reproduces" in standard.protocol_differs
    coteaching = row(frame, "inst:0.4", "coteaching", "last")
    assert coteaching.published == 89.10 and coteaching.verdict == NOT_JUDGED
    assert "CausalNL" in coteaching.source and coteaching.method_in_paper == "Co-teaching"
    assert set(frame.dataset) == {"fashion-mnist"}  # CausalNL's other cells (other rates) match no trial here
