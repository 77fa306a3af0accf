"""`bench claims`: each method's own claim judged on hand-made metrics, and the claims of every
registered method name metrics it logs."""
from __future__ import annotations

import csv
import io
import json
import math

import pytest
import torch

from helpers import finish_trial
from noisybench.bench.cli import main
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.spec import TrialSpec
from noisybench.methods import method_names
from noisybench.methods.claims import Claim, Quantity, Window, clean_rate
from noisybench.methods.registry import get_method
from noisybench.results.claims import FAILS, HOLDS, MIXED, UNTESTED, Trial, finder, judge, judge_store
from noisybench.results.claims_report import to_csv, to_latex, to_markdown

EPOCHS = 8
DILUTION = Claim("dilution", "a paper, Fig. 4", "Diluted labels beat the model early.",
                 Quantity(metric="diluted_label_acc"), ">", Quantity(metric="model_pred_acc"),
                 window=Window("fraction", 0.0, 0.5, "the first half"))
SELECTION = Claim("selection", "a paper, Sect. 2", "Kept samples are cleaner than the data.",
                  Quantity(metric="label_precision"), ">", clean_rate(), window=Window("fraction", 0.5, 1.0, "late"))


def trial(seed, method="lend", realised_rate=0.4, noise="sym:0.4", **curves):
    """A trial of EPOCHS epochs; each curve is a function epoch -> value (or a constant)."""
    lines = []
    for e in range(1, EPOCHS + 1):
        line = {"epoch": e, "test_acc": 0.5, "round": 1, "phase": "train"}
        for name, curve in curves.items():
            value = curve(e) if callable(curve) else curve
            if value is not None:
                line[name] = value
        lines.append(line)
    return Trial("digits", "quick", noise, method, method.split("[")[0], seed, lines, realised_rate)


def judged(claim, trials):
    return judge(claim, trials, finder(trials))


def test_holds_in_every_seed_and_fails_in_every_seed():
    seeds = [trial(s, diluted_label_acc=0.8 + 0.01 * s, model_pred_acc=0.6) for s in range(3)]
    j = judged(DILUTION, seeds)
    assert j.verdict == HOLDS and j.note == "in all 3 seeds" and j.held == 3
    assert j.left == pytest.approx({0: 0.8, 1: 0.81, 2: 0.82})
    seeds = [trial(s, diluted_label_acc=0.55, model_pred_acc=0.7 + 0.01 * s) for s in range(3)]
    assert judged(DILUTION, seeds).verdict == FAILS


def test_only_the_window_counts():
    # Diluted labels win in the first half (epochs 1-4) and lose afterwards: the early claim holds.
    curve = lambda e: 0.9 if e <= 4 else 0.1  # noqa: E731
    assert judged(DILUTION, [trial(s, diluted_label_acc=curve, model_pred_acc=0.5) for s in range(2)]).verdict == HOLDS
    late = Claim("late", "x", "y", Quantity(metric="diluted_label_acc"), ">", Quantity(metric="model_pred_acc"),
                 window=Window("fraction", 0.5, 1.0, "late"))
    assert judged(late, [trial(s, diluted_label_acc=curve, model_pred_acc=0.5) for s in range(2)]).verdict == FAILS


def test_a_claim_that_holds_in_two_of_three_seeds_is_mixed():
    seeds = [trial(0, diluted_label_acc=0.8, model_pred_acc=0.6), trial(1, diluted_label_acc=0.8, model_pred_acc=0.6),
             trial(2, diluted_label_acc=0.5, model_pred_acc=0.6)]
    j = judged(DILUTION, seeds)
    assert (j.verdict, j.note) == (MIXED, "holds in 2 of 3 seeds")


def test_every_seed_agrees_but_the_spread_is_larger_than_the_effect_is_mixed():
    seeds = [trial(0, diluted_label_acc=0.601, model_pred_acc=0.6), trial(1, diluted_label_acc=0.7, model_pred_acc=0.6),
             trial(2, diluted_label_acc=0.6005, model_pred_acc=0.6)]
    j = judged(DILUTION, seeds)
    assert j.verdict == MIXED and j.note.startswith("too close to call: every seed holds")


def test_a_tie_does_not_hold():
    assert judged(DILUTION, [trial(0, diluted_label_acc=0.6, model_pred_acc=0.6)]).verdict == FAILS


def test_a_missing_metric_is_untested_never_holds():
    # Seeds 0 and 1 would hold; seed 2 lacks model_pred_acc: the cell is untested, and says which seed.
    seeds = [trial(s, diluted_label_acc=0.9, model_pred_acc=0.5) for s in range(2)] + [trial(2, diluted_label_acc=0.9)]
    j = judged(DILUTION, seeds)
    assert j.verdict == UNTESTED and "does not log model_pred_acc" in j.note and "(seed 2)" in j.note
    assert j.left == {} and j.right == {}
    # NaN in the window, and a metric absent from every seed
    nan = [trial(s, diluted_label_acc=lambda e: math.nan if e == 2 else 0.9, model_pred_acc=0.5) for s in range(2)]
    assert judged(DILUTION, nan).verdict == UNTESTED
    j = judged(DILUTION, [trial(s, model_pred_acc=0.5) for s in range(3)])
    assert j.verdict == UNTESTED and "(every seed)" in j.note


def test_a_baseline_needs_clean_labels():
    seeds = [trial(s, realised_rate=0.4, label_precision=0.9) for s in range(2)]
    j = judged(SELECTION, seeds)
    assert j.verdict == HOLDS and j.right == pytest.approx({0: 0.6, 1: 0.6})
    real = [trial(s, realised_rate=None, label_precision=0.9) for s in range(2)]
    j = judged(SELECTION, real)
    assert j.verdict == UNTESTED and "no clean labels" in j.note


def test_an_epoch_window_longer_than_the_trial_is_untested():
    claim = Claim("c", "x", "y", Quantity(metric="label_precision"), ">", clean_rate(),
                  window=Window("epoch", 1, 40, "the paper's first 40 epochs"))
    j = judged(claim, [trial(0, label_precision=0.9)])
    assert j.verdict == UNTESTED and "ran 8 epochs" in j.note


def test_during_phase_rounds_and_needs():
    # during: only epochs where the mechanism ran count; none at all -> untested.
    claim = Claim("c", "x", "y", Quantity(metric="corrected_acc"), ">", clean_rate(), during="corrected_acc")
    later = lambda e: 0.9 if e > 3 else None  # noqa: E731
    assert judged(claim, [trial(s, corrected_acc=later) for s in range(2)]).verdict == HOLDS
    j = judged(claim, [trial(s) for s in range(2)])
    assert j.verdict == UNTESTED
    # rounds: last against first; one round only -> untested.
    grow = Claim("g", "x", "y", Quantity(metric="kept", window=Window("round", -1, 1, "last")), ">",
                 Quantity(metric="kept", window=Window("round", 0, 1, "first")))
    seeds = [trial(s, kept=lambda e: 0.1 * e) for s in range(2)]
    for t in seeds:
        for line in t.lines:
            line["round"] = 1 if line["epoch"] <= 4 else 2
    assert judged(grow, seeds).verdict == HOLDS
    j = judged(grow, [trial(s, kept=lambda e: 0.1 * e) for s in range(2)])
    assert j.verdict == UNTESTED and "one round only" in j.note
    # needs: GCE's pruning claim on plain GCE is untested, with the hyperparameter named.
    gce = get_method("gce").claims[0]
    plain = [Trial("digits", "quick", "sym:0.4", "gce", "gce", s, trial(s).lines, 0.4, {"truncated": False})
             for s in range(2)]
    j = judged(gce, plain)
    assert j.verdict == UNTESTED and "gce.truncated=True" in j.note


def test_a_claim_against_another_method_reads_its_trial_of_the_same_seed():
    elr = get_method("elr").claims[0]
    trials = [trial(s, method="elr", fit_weight_noisy=0.1) for s in range(2)]
    trials += [trial(s, method="standard", fit_weight_noisy=0.6) for s in range(2)]
    by_method = {j.method: j for j in judge_store(trials)}
    assert by_method["elr"].verdict == HOLDS and by_method["elr"].right == pytest.approx({0: 0.6, 1: 0.6})
    j = judge_store([t for t in trials if not (t.method == "standard" and t.seed == 1)])[0]
    assert j.verdict == UNTESTED and "no finished standard trial" in j.note


def test_tables_show_claim_source_values_and_verdict():
    seeds = [trial(s, diluted_label_acc=0.55, model_pred_acc=0.7 + 0.01 * s) for s in range(3)]
    judgements = [judged(DILUTION, seeds), judged(SELECTION, [trial(0, realised_rate=None, label_precision=0.9)])]
    md = to_markdown(judgements)
    assert "| lend | sym:0.4 | dilution: Diluted labels beat the model early. | a paper, Fig. 4 | the first half |" in md
    assert "diluted_label_acc 55.0 ± 0.0 > model_pred_acc 71.0 ± 1.0 | **fails** (in all 3 seeds) |" in md
    assert "**untested** (no clean labels" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(judgements))))
    assert rows[0]["verdict"] == "fails" and rows[0]["seeds_holding"] == "0" and rows[0]["n"] == "3"
    assert rows[0]["right_by_seed"] == "0:70.0000;1:71.0000;2:72.0000"
    assert rows[1]["verdict"] == "untested" and rows[1]["left_mean"] == ""
    tex = to_latex(judgements)
    assert "\\toprule" in tex and "71.0 $\\pm$ 1.0" in tex and "\\label{tab:claims-digits-quick}" in tex


def write_store_trial(root, method, seed, lines, realised_rate=0.4, noise="sym:0.4"):
    spec = TrialSpec(dataset="digits", method=method, noise=noise, seed=seed, protocol="quick")
    path = root / spec.dirname
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"spec": spec.to_json(), "hash": spec.hash,
                                                "noise": {"realised_rate": realised_rate}}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    finish_trial(path)


def test_bench_claims_command_and_figures(tmp_path, capsys):
    root = tmp_path / "runs"
    for seed in range(2):
        write_store_trial(root, "lend", seed, trial(seed, diluted_label_acc=0.55, model_pred_acc=0.7,
                                                     label_precision=0.8).lines)
        write_store_trial(root, "standard", seed, trial(seed, method="standard").lines)
    figures = tmp_path / "figures"
    figures.mkdir()
    assert main(["claims", "--results", str(root), "--figures", str(figures)]) == 0
    out = capsys.readouterr().out
    assert "| lend | sym:0.4 | dilution:" in out and "Zhang et al., Machine Learning 2022, Sect. 1 and Fig. 4" in out
    assert "**fails** (in both seeds)" in out and "**holds** (in both seeds)" in out
    assert sorted(p.name for p in figures.iterdir()) == ["claim_digits_quick_lend_dilution.png",
                                                         "claim_digits_quick_lend_selection.png"]
    # bad input: one line, exit 2
    assert main(["claims", "--results", str(tmp_path / "none")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["claims", "--results", str(empty)]) == 2
    assert main(["claims", "--results", str(root), "--methods", "standard"]) == 2
    assert main(["claims", "--results", str(root), "--format", "html"]) == 2
    err = capsys.readouterr().err
    assert "no finished trials" in err and "of a method with claims" in err


def test_claim_figure_draws_both_quantities_with_seeds_as_bands():
    from noisybench.results.claims_report import plot_claim

    seeds = [trial(s, diluted_label_acc=0.55 + 0.01 * s, model_pred_acc=0.7) for s in range(3)]
    j = judged(DILUTION, seeds)
    figure = plot_claim([j], {("digits", "quick", "sym:0.4", "lend"): seeds}, finder(seeds), None)
    lines = {line.get_gid(): line for line in figure.axes[0].get_lines()}
    assert set(lines) == {"diluted_label_acc", "model_pred_acc"}
    assert lines["diluted_label_acc"].get_ydata() == pytest.approx([56.0] * EPOCHS)
    assert len(figure.axes[0].collections) >= 1  # the seeds' band
    assert "fails" in figure.axes[0].get_title()


# The hyperparameters that make each method's mechanism run within a few epochs on digits, so that
# every metric its claims read is logged (the claims' own windows are judged on real trials).
QUICK_MECHANISM = {"gce": {"truncated": "true", "start_prune": "3", "prune_every": "1"},
                   "dividemix": {"warm_up": "1"}}


@pytest.fixture(scope="module")
def logged_metrics(tmp_path_factory):
    """{method: every metric its lines logged} for each method with claims (or that a claim reads)."""
    root = tmp_path_factory.mktemp("claims-runs")
    wanted = {n for n in method_names() if get_method(n).claims}
    wanted |= {m for n in wanted for claim in get_method(n).claims for m, _ in claim.metrics() if m}
    torch.set_num_threads(1)
    out = {}
    for name in sorted(wanted):
        spec = TrialSpec(dataset="digits", method=name, noise="sym:0.4", seed=0, protocol="quick", epochs=5,
                         hparams=tuple(sorted(QUICK_MECHANISM.get(name, {}).items())))
        run_trial(spec, root, device="cpu")
        lines = [json.loads(line) for line in (root / spec.dirname / "metrics.jsonl").read_text().splitlines()]
        out[name] = {key for line in lines for key, value in line.items()
                     if not (isinstance(value, float) and math.isnan(value))}
    return out


@pytest.mark.parametrize("name", method_names())
def test_every_claim_names_metrics_its_method_logs(name, logged_metrics):
    for claim in get_method(name).claims:
        assert claim.source and claim.sentence.endswith(".")
        for method, metric in claim.metrics():
            owner = method or name
            assert metric in logged_metrics[owner], f"{name}.{claim.name}: {owner} does not log {metric}"
    names = [c.name for c in get_method(name).claims]
    assert len(names) == len(set(names)), f"{name}: claim names must be unique"
