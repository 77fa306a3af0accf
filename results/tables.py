"""Paper-style tables: rows are methods, columns noise settings x (Best, Last).

Cells are mean ± std (ddof=1) over seeds in percent; the best mean per column is bold, and
every other method not significantly worse than it carries a dagger (alpha = 0.05; a footnote says
which test): by default a one-sided Welch's t-test over seeds from the cells' mean, std and n;
``test="paired"`` pairs the two cells' values seed by seed (a seed gives every method the same
noisy labels) and runs a one-sided paired t-test.
Markdown (GitHub pipes), LaTeX (booktabs) and CSV (one row per dataset, protocol, noise,
method: a stable contract for scripts).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from noisybench.results.aggregate import SUMMARY_COLUMNS
from noisybench.results.labels import (
    chosen_methods,
    method_names_by_label,
    method_sort_key,
    sort_methods,
)

NOISE_ORDER = ["clean", "sym", "pair", "asym", "inst", "file"]


def noise_sort_key(noise: str):
    kind, _, rate = noise.partition(":")
    try:
        rate_value = float(rate)
    except ValueError:
        rate_value = math.inf
    kind_rank = NOISE_ORDER.index(kind) if kind in NOISE_ORDER else len(NOISE_ORDER)
    return (kind_rank, kind, rate_value, rate)


def _cell(mean: float, std: float, n: int, show_n: bool) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.2f}" if n < 2 or std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"
    return f"{text} (n={n})" if show_n else text


SIGNIFICANCE_ALPHA = 0.05
NOT_WORSE_MARK = "†"
# welch (the default): the cells as independent samples.  paired: the seeds both cells share, as
# pairs -- a seed fixes the noisy labels (and the split) for every method, so much of the spread
# over seeds is common to the methods and a paired test sees through it.
SIGNIFICANCE_TESTS = {
    "welch": "one-sided Welch's t-test over seeds",
    "paired": "one-sided paired t-test over the seeds both cells share, which gave both methods the same "
              "noisy labels",
}


def significance_note(test: str = "welch") -> str:
    untested = "cells sharing fewer than 2 seeds" if test == "paired" else "cells with n < 2"
    return (f"bold: best mean in the column; {NOT_WORSE_MARK}: not significantly worse than the bold entry "
            f"({SIGNIFICANCE_TESTS[test]}, α = {SIGNIFICANCE_ALPHA}; {untested} are not tested)")


def not_significantly_worse(best: tuple[float, float, int], other: tuple[float, float, int],
                            alpha: float = SIGNIFICANCE_ALPHA) -> bool | None:
    """Is ``other`` (mean, std, n) not significantly worse than ``best``?

    One-sided Welch's t-test (unequal variances) of H1 "best's mean is higher", computed from the
    cells' summary statistics (scipy's ttest_ind_from_stats; identical to testing the per-seed
    values).  None when it cannot be tested: fewer than two seeds or no std.
    """
    (best_mean, best_std, best_n), (mean, std, n) = best, other
    values = (best_mean, best_std, mean, std)
    if min(best_n, n) < 2 or any(v is None or math.isnan(v) for v in values):
        return None
    if best_std == 0 and std == 0:  # no spread at all: the t statistic is undefined
        return mean >= best_mean
    from scipy.stats import ttest_ind_from_stats

    test = ttest_ind_from_stats(best_mean, best_std, best_n, mean, std, n, equal_var=False, alternative="greater")
    return bool(test.pvalue >= alpha)


def paired_not_significantly_worse(best: dict[int, float], other: dict[int, float],
                                   alpha: float = SIGNIFICANCE_ALPHA) -> bool | None:
    """Is ``other`` not significantly worse than ``best``, pairing their values by seed?

    best and other map seed -> value.  One-sided paired t-test (scipy's ttest_rel) of H1 "best is
    higher on the same seed" over the seeds both have.  None when they share fewer than two seeds.
    """
    seeds = sorted(best.keys() & other.keys())
    if len(seeds) < 2:
        return None
    differences = [best[s] - other[s] for s in seeds]
    if max(differences) == min(differences):  # no spread: the t statistic is undefined
        return differences[0] <= 0
    from scipy.stats import ttest_rel

    test = ttest_rel([best[s] for s in seeds], [other[s] for s in seeds], alternative="greater")
    return bool(test.pvalue >= alpha)


# Columns beyond Best and Last, shown when some trial of the block has them.
EXTRA_PARTS = {
    "selected": "Selected = test accuracy at the epoch of best class-balanced accuracy on the noisy validation "
                "split (methods that hold one out)",
    "own": "Own = test accuracy of the model the method's own rule reports (Me-Momentum: its best-validation "
           "inner-round model, as in its paper)",
}


PARTS = ("best", "last") + tuple(EXTRA_PARTS)


@dataclass(frozen=True)
class TableOptions:
    """What a table shows, for a paper: which parts (Best, Last, ...), which methods and noise
    settings in which order (None: all, in the default order), and whether a wide grid is split
    into one table per noise family (sym, pair, ...)."""

    parts: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    noises: tuple[str, ...] | None = None
    split_by_noise_kind: bool = False


def select(summary: pd.DataFrame, options: TableOptions) -> pd.DataFrame:
    """The summary rows the options keep (a method is named by its row label or its registry name)."""
    keep = summary
    if options.methods is not None:
        keep = keep[chosen_methods(keep, options.methods)]
    if options.noises is not None:
        keep = keep[keep["noise"].isin(options.noises)]
    return keep


def _method_order(summary: pd.DataFrame, options: TableOptions) -> list[str]:
    """Row labels in the tables' order, or in the order --methods names them (by label or registry name)."""
    names = method_names_by_label(summary)
    methods = sort_methods(summary["method"], names)
    if options.methods is None:
        return methods
    rank = {name: i for i, name in enumerate(options.methods)}
    return sorted(methods, key=lambda m: (rank.get(m, rank.get(names[m], len(rank))), method_sort_key(m, names[m])))


def _columns(summary: pd.DataFrame, options: TableOptions | None = None) -> list[tuple[str, str]]:
    options = options or TableOptions()
    present = ["best", "last"] + [p for p in EXTRA_PARTS
                                  if f"{p}_mean" in summary and summary[f"{p}_mean"].notna().any()]
    parts = present if options.parts is None else [p for p in options.parts if p in present]
    noises = sorted(summary["noise"].unique(), key=noise_sort_key)
    if options.noises is not None:
        noises = [n for n in options.noises if n in set(noises)]
    return [(noise, part) for noise in noises for part in parts]


def _part_n(row, part: str) -> int:
    """Seeds behind one cell: Own counts only the seeds whose method reported a model."""
    n = getattr(row, f"{part}_n", row.n)
    return int(row.n if n is None or (isinstance(n, float) and math.isnan(n)) else n)


def _extra_note(columns: list[tuple[str, str]]) -> str:
    parts = dict.fromkeys(part for _, part in columns if part in EXTRA_PARTS)
    return "".join(f"; {EXTRA_PARTS[p]}" for p in parts)


def _check_test(summary: pd.DataFrame, test: str) -> None:
    if test not in SIGNIFICANCE_TESTS:
        raise ValueError(f"significance test {test!r}: choose one of {', '.join(SIGNIFICANCE_TESTS)}")
    if test == "paired" and "best_by_seed" not in summary:
        raise ValueError("the paired test needs per-seed values: build the summary with results.aggregate.summarize")


def _grid(summary: pd.DataFrame, bold: tuple[str, str], test: str = "welch",
          options: TableOptions | None = None) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows of cell texts, and footnotes for one (dataset, protocol) block."""
    _check_test(summary, test)
    options = options or TableOptions()
    columns = _columns(summary, options)
    methods = _method_order(summary, options)
    ns = set(int(n) for n in summary["n"])
    show_n = len(ns) > 1
    index = {(r.method, r.noise): r for r in summary.itertuples()}
    best_in_column, best_rows = {}, {}
    for noise, part in columns:
        candidates = [index[(m, noise)] for m in methods if (m, noise) in index]
        candidates = [r for r in candidates if getattr(r, f"{part}_mean") is not None
                      and not math.isnan(getattr(r, f"{part}_mean"))]
        best_row = max(candidates, key=lambda r: getattr(r, f"{part}_mean"), default=None)
        best_in_column[(noise, part)] = None if best_row is None else getattr(best_row, f"{part}_mean")
        best_rows[(noise, part)] = best_row
    header = ["Method"] + [f"{noise} {part.capitalize()}" for noise, part in columns]
    rows = []
    for m in methods:
        row = [m]
        for noise, part in columns:
            r = index.get((m, noise))
            if r is None:
                row.append("–")
                continue
            mean, std = getattr(r, f"{part}_mean"), getattr(r, f"{part}_std")
            n = _part_n(r, part)
            text = _cell(mean, std, n, show_n or n != int(r.n))
            if best_in_column[(noise, part)] is not None and mean == best_in_column[(noise, part)]:
                text = f"{bold[0]}{text}{bold[1]}"
            elif best_rows[(noise, part)] is not None and _not_worse(best_rows[(noise, part)], r, part, test):
                text = f"{text} {NOT_WORSE_MARK}"
            row.append(text)
        rows.append(row)
    notes = [f"n = {ns.pop()} seeds per cell" if not show_n else "n = seeds per cell, shown where they differ",
             significance_note(test)]
    return header, rows, notes


def _not_worse(best_row, row, part: str, test: str) -> bool | None:
    if test == "paired":
        return paired_not_significantly_worse(getattr(best_row, f"{part}_by_seed"), getattr(row, f"{part}_by_seed"))
    return not_significantly_worse(
        (getattr(best_row, f"{part}_mean"), getattr(best_row, f"{part}_std"), _part_n(best_row, part)),
        (getattr(row, f"{part}_mean"), getattr(row, f"{part}_std"), _part_n(row, part)))


def _blocks(summary: pd.DataFrame, options: TableOptions | None = None):
    """(dataset, protocol, family, rows) of each table: one per dataset and protocol, and with
    ``split_by_noise_kind`` one per noise family too (family None otherwise)."""
    options = options or TableOptions()
    summary = select(summary, options)
    for (dataset, protocol), block in summary.groupby(["dataset", "protocol"], sort=True):
        if not options.split_by_noise_kind:
            yield dataset, protocol, None, block
            continue
        kinds = block["noise"].str.split(":").str[0]
        for kind in sorted(kinds.unique(), key=lambda k: noise_sort_key(k + ":")):
            yield dataset, protocol, kind, block[kinds == kind]


def to_markdown(summary: pd.DataFrame, test: str = "welch", options: TableOptions | None = None) -> str:
    from tabulate import tabulate

    out = []
    for dataset, protocol, family, block in _blocks(summary, options):
        header, rows, notes = _grid(block, ("**", "**"), test, options)
        which = f", {family} noise" if family else ""
        out.append(f"Test accuracy (%) on {dataset}, protocol {protocol}{which}: Best = highest over epochs, "
                   f"Last = mean of the last 10 epochs{_extra_note(_columns(block, options))}; "
                   f"mean ± std over seeds ({notes[0]}).\n")
        out.append(tabulate(rows, headers=header, tablefmt="github", disable_numparse=True))
        out.append(f"\n{notes[1][0].upper()}{notes[1][1:]}.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# What plain pdflatex cannot take as text: math-mode symbols (its default T1/OT1 fonts print "<"
# as an inverted exclamation mark), and the Unicode signs the Markdown tables use.
LATEX_SYMBOLS = {"±": r"$\pm$", NOT_WORSE_MARK: r"$^\dagger$", "α": r"$\alpha$", "<": r"$<$", ">": r"$>$",
                 "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$", "–": "--", "τ": r"$\tau$"}


def _latex_escape(text: str) -> str:
    text = re.sub(r"([_%&#$])", r"\\\1", text)
    return "".join(LATEX_SYMBOLS.get(ch, ch) for ch in text)


def _latex_label(*parts: str | None) -> str:
    return "tab:" + "-".join(re.sub(r"[^A-Za-z0-9]+", "-", p).strip("-").lower() for p in parts if p)


def to_latex(summary: pd.DataFrame, test: str = "welch", options: TableOptions | None = None) -> str:
    out = ["% noisybench table; needs \\usepackage{booktabs} (\\toprule, \\midrule, \\cmidrule, \\bottomrule)\n"]
    for dataset, protocol, family, block in _blocks(summary, options):
        header, rows, notes = _grid(block, ("\\textbf{", "}"), test, options)
        columns = _columns(block, options)
        noises = list(dict.fromkeys(noise for noise, _ in columns))
        parts = len(columns) // max(len(noises), 1)
        which = f", {family} noise" if family else ""
        out.append("\\begin{table}[t]\n\\centering")
        out.append(f"\\caption{{Test accuracy (\\%) on {_latex_escape(dataset)}, protocol {_latex_escape(protocol)}"
                   f"{_latex_escape(which)}; "
                   f"mean $\\pm$ std over seeds ({_latex_escape(notes[0])}). Best: highest over epochs; "
                   f"Last: mean of the last 10 epochs{_latex_escape(_extra_note(columns))}. "
                   f"{_latex_escape(notes[1][0].upper() + notes[1][1:])}.}}")
        out.append("\\begin{tabular}{l" + "c" * len(columns) + "}\n\\toprule")
        out.append("Method & " + " & ".join(f"\\multicolumn{{{parts}}}{{c}}{{{_latex_escape(n)}}}" for n in noises)
                   + " \\\\")
        rules = " ".join(f"\\cmidrule(lr){{{2 + i * parts}-{1 + (i + 1) * parts}}}" for i in range(len(noises)))
        out.append(rules)
        out.append(" & " + " & ".join(part.capitalize() for _, part in columns) + " \\\\\n\\midrule")
        for row in rows:
            out.append(" & ".join(_latex_escape(c) if not c.startswith("\\textbf") else
                                  "\\textbf{" + _latex_escape(c[8:-1]) + "}" for c in row) + " \\\\")
        out.append("\\bottomrule\n\\end{tabular}")
        out.append(f"\\label{{{_latex_label(dataset, protocol, family)}}}\n\\end{{table}}\n")
    return "\n".join(out)


def to_csv(summary: pd.DataFrame, test: str = "welch", options: TableOptions | None = None) -> str:
    """The numbers only (no marks), so ``test`` changes nothing here; the options choose rows only."""
    ordered = select(summary, options or TableOptions()).copy()
    ordered["_n"] = ordered["noise"].map(noise_sort_key)
    names = method_names_by_label(ordered)
    ordered["_m"] = [method_sort_key(label, names[label]) for label in ordered["method"]]
    ordered = ordered.sort_values(["dataset", "protocol", "_n", "_m"]).drop(columns=["_n", "_m"])
    # rule_versions: the code versions of each cell's parts (core/rules.py), last so scripts keep their columns.
    cols = SUMMARY_COLUMNS + [c for c in ("selected_mean", "selected_std", "own_mean", "own_std", "own_n",
                                          "rule_versions") if c in ordered]
    return ordered[cols].to_csv(index=False, float_format="%.4f")


FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def render(summary: pd.DataFrame, fmt: str, test: str = "welch", options: TableOptions | None = None) -> str:
    return FORMATS[fmt](summary, test, options)
