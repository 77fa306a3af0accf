"""The `bench table --compare-paper` table: measured cells beside published numbers, with the
difference and a verdict (results/verdict.py), as Markdown, LaTeX or CSV.

One table per (dataset, protocol), one row per (measured cell, published number), sorted like
the measured tables.  Long texts -- the source, recipe remarks, the source's caveats -- are
footnotes under each table: a number ([1]) per source, a letter (a) per remark.
"""
from __future__ import annotations

import math

import pandas as pd

from noisybench.results.tables import _latex_escape, _latex_label
from noisybench.results.verdict import NOT_JUDGED, RULE_LATEX, RULE_TEXT, TOLERANCE

COMPARED = ("Compared: measured Best with published Best, measured Last with published Last (Best = highest test "
            "accuracy over epochs, Last = mean test accuracy over the last 10 epochs, as the LEND paper defines "
            "both); a published number whose source does not say which (metric 'unstated') is shown beside both "
            "measured numbers and not judged. n = our seeds / the source's runs. A recipe remark means the numbers "
            "were not produced by the same recipe; such a cell is not judged.")
# One row per (measured cell, published number): the --compare-paper CSV, in this order.
COMPARISON_COLUMNS = [
    "dataset", "protocol", "noise", "method", "metric", "n", "measured_mean", "measured_std",
    "published", "published_std", "published_n", "difference", "bound", "verdict", "judged_by",
    "best_mean", "best_std", "last_mean", "last_std",
    "method_in_paper", "source", "table", "backbone", "bench_protocol", "protocol_differs", "note",
]
HEADER = ["Noise", "Method", "n", "Metric", "Measured", "Published", "Diff", "Verdict", "Source", "Notes"]


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _number(mean, std, decimals: int = 2) -> str:
    if _missing(mean):
        return "–"
    return f"{mean:.{decimals}f}" if _missing(std) else f"{mean:.{decimals}f} ± {std:.2f}"


def _measured(row) -> str:
    if row.metric == "unstated":
        return f"best {_number(row.best_mean, row.best_std)} / last {_number(row.last_mean, row.last_std)}"
    return _number(row.measured_mean, row.measured_std)


def _verdict(row) -> str:
    if row.verdict == NOT_JUDGED:
        return f"{NOT_JUDGED}: {row.judged_by}"
    star = "*" if row.judged_by == TOLERANCE else ""  # no pipe: it would split a Markdown cell
    return f"{row.verdict} ({'within' if row.verdict == 'consistent' else 'beyond'} ±{row.bound:.2f}{star})"


class _Footnotes:
    """Numbers for sources, letters for remarks, each given once per table in order of use."""

    def __init__(self):
        self.sources: dict[str, int] = {}
        self.remarks: dict[str, str] = {}

    def source(self, text: str) -> str:
        return f"[{self.sources.setdefault(text, len(self.sources) + 1)}]"

    def remark(self, text: str) -> str:
        return self.remarks.setdefault(text, chr(ord("a") + len(self.remarks) % 26) * (1 + len(self.remarks) // 26))

    def lines(self) -> list[str]:
        return ([f"[{i}] {text}" for text, i in self.sources.items()]
                + [f"({mark}) {text}" for text, mark in self.remarks.items()])


def _rows(block: pd.DataFrame, notes: _Footnotes) -> list[list[str]]:
    rows = []
    for r in block.itertuples():
        same_name = r.method_in_paper.lower() in ("", r.method_name)
        method = r.method if same_name else f"{r.method} ({r.method_in_paper})"
        published_n = "–" if _missing(r.published_n) else str(int(r.published_n))
        remarks = [notes.remark(text) for text in (r.protocol_differs, r.note) if text]
        rows.append([r.noise, method, f"{r.n} / {published_n}", r.metric.capitalize(), _measured(r),
                     _number(r.published, r.published_std, int(r.published_decimals)),
                     "–" if _missing(r.difference) else f"{r.difference:+.2f}", _verdict(r),
                     f"{notes.source(r.source)} {r.table}", ", ".join(remarks)])
    return rows


def _blocks(pairs: pd.DataFrame):
    for key in dict.fromkeys(zip(pairs["dataset"], pairs["protocol"])):
        yield key, pairs[(pairs["dataset"] == key[0]) & (pairs["protocol"] == key[1])]


def _counts(pairs: pd.DataFrame) -> str:
    counts = pairs["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in ("consistent", "higher", "lower", NOT_JUDGED) if v in counts)


def to_markdown(pairs: pd.DataFrame, unmatched: list[str]) -> str:
    from tabulate import tabulate

    out = [f"Measured test accuracy (%) beside published numbers for the same dataset, noise and method. "
           f"{COMPARED} {RULE_TEXT}", ""]
    for (dataset, protocol), block in _blocks(pairs):
        notes = _Footnotes()
        rows = _rows(block, notes)
        out += [f"Published numbers on {dataset}, measured with protocol {protocol} ({_counts(block)}):", "",
                tabulate(rows, headers=HEADER, tablefmt="github", disable_numparse=True), ""]
        out += [line + "  " for line in notes.lines()] + [""]
    if unmatched:
        out.append(f"No published number for: {', '.join(unmatched)}.")
    return "\n".join(out).rstrip() + "\n"


def _latex_cell(text: str, column: str) -> str:
    if column == "Diff" and text != "–":
        return f"${text}$"
    if column == "Verdict":
        return _latex_escape(text.replace("*", "@S@")).replace("@S@", "$^*$")
    return _latex_escape(text)


def to_latex(pairs: pd.DataFrame, unmatched: list[str]) -> str:
    out = ["% noisybench --compare-paper; needs \\usepackage{booktabs} (\\toprule, \\midrule, \\bottomrule)\n"]
    for (dataset, protocol), block in _blocks(pairs):
        notes = _Footnotes()
        rows = _rows(block, notes)
        caption = (f"Measured test accuracy (\\%) on {_latex_escape(dataset)} (protocol {_latex_escape(protocol)}) "
                   f"beside published numbers for the same noise and method ({_latex_escape(_counts(block))}). "
                   f"{_latex_escape(COMPARED)} {RULE_LATEX}")
        out += ["\\begin{table}[t]\n\\centering\n\\small", f"\\caption{{{caption}}}",
                "\\begin{tabular}{llcllcrlll}\n\\toprule", " & ".join(HEADER) + " \\\\\n\\midrule"]
        out += [" & ".join(_latex_cell(c, h) for c, h in zip(row, HEADER)) + " \\\\" for row in rows]
        out.append("\\bottomrule\n\\end{tabular}\n\\par\\smallskip\\footnotesize")
        out += [_latex_escape(line) + "\\par" for line in notes.lines()]
        out.append(f"\\label{{{_latex_label('compare', dataset, protocol)}}}\n\\end{{table}}\n")
    if unmatched:
        out.append(f"% No published number for: {', '.join(unmatched)}.\n")
    return "\n".join(out)


def to_csv(pairs: pd.DataFrame, unmatched: list[str]) -> str:
    """One row per (measured cell, published number), COMPARISON_COLUMNS; the rule is in
    results/README.md (the CSV has no caption)."""
    frame = pairs.reindex(columns=COMPARISON_COLUMNS).copy()
    frame["published_n"] = frame["published_n"].astype("Int64")
    return frame.to_csv(index=False, float_format="%.4f")


FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}
