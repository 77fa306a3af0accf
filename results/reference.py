"""Published numbers (results/reference/*.csv) and their place beside measured ones.

Every CSV row is one number a source prints, with the source named precisely enough to check:

    source          where the number was read (paper and version, or repository, file and commit)
    table           the table (or README section) in that source
    dataset, noise  in this project's names (noise canonicalised by noise.parse_noise)
    method          this project's registry name
    metric          best | last | unstated (the source does not say which)
    value, std      test accuracy in percent; std empty when the source gives none
    backbone        the network the source trained
    protocol        the source's recipe in words
    bench_protocol  the noisybench protocol that reproduces that recipe, empty when none does
    note            caveats (second-hand quotes, missing std, unclear averaging)

Only numbers read in a nameable source go in; a number that could not be found stays out.
What is here and what is missing is listed in the report of issue 9 (the LEND paper's own
Tables 1-3 could not be read in any stored copy of the paper, so none of its numbers are here).

`bench table --compare-paper` matches rows on (dataset, noise, method) and says when the
measured protocol is not the one the published number came from.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from noisybench.core.errors import BenchError

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE_COLUMNS = ["source", "table", "dataset", "noise", "method", "metric", "value", "std", "backbone",
                     "protocol", "bench_protocol", "note"]
METRICS = ("best", "last", "unstated")


def load_reference(directory=REFERENCE_DIR) -> pd.DataFrame:
    """All reference rows, checked: known metric names, numeric values, canonical noise specs."""
    import noisybench.noise as noise

    frames = []
    for path in sorted(Path(directory).glob("*.csv")):
        frame = pd.read_csv(path, dtype={"bench_protocol": str, "note": str}, keep_default_na=False,
                            na_values={"value": [""], "std": [""]})
        missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; every reference CSV has {REFERENCE_COLUMNS}")
        bad = sorted(set(frame["metric"]) - set(METRICS))
        if bad:
            raise ValueError(f"{path}: metric {bad} is not one of {METRICS}")
        frame["noise"] = [noise.parse_noise(text).text for text in frame["noise"]]
        frame["file"] = path.name
        frames.append(frame[REFERENCE_COLUMNS + ["file"]])
    if not frames:
        return pd.DataFrame(columns=REFERENCE_COLUMNS + ["file"])
    return pd.concat(frames, ignore_index=True)


def base_method(label: str) -> str:
    """``lend[k=4]`` -> ``lend``: the row's method before its --hp overrides."""
    return label.split("[")[0]


def base_protocol(label: str) -> str:
    """``quick[epochs=3]`` -> ``quick``."""
    return label.split("[")[0]


def protocol_remark(measured_protocol: str, measured_method: str, reference_row) -> str:
    """Empty when the measured trials used the recipe the published number came from; else why not."""
    reasons = []
    if not reference_row.bench_protocol:
        reasons.append(f"no noisybench protocol reproduces the source's recipe ({reference_row.protocol}; "
                       f"{reference_row.backbone}); measured with {measured_protocol}")
    elif base_protocol(measured_protocol) != reference_row.bench_protocol or measured_protocol != base_protocol(measured_protocol):
        reasons.append(f"measured with {measured_protocol}, published with {reference_row.bench_protocol} "
                       f"({reference_row.protocol}; {reference_row.backbone})")
    if measured_method != base_method(measured_method):
        reasons.append("measured with hyperparameter overrides")
    return "; ".join(reasons)


def compare_with_reference(summary: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """One row per (measured cell, published number) pair with the same dataset, noise and method."""
    rows = []
    for measured in summary.itertuples():
        matches = reference[(reference.dataset == measured.dataset) & (reference.noise == measured.noise)
                            & (reference.method == base_method(measured.method))]
        for ref in matches.itertuples():
            rows.append({
                "dataset": measured.dataset, "noise": measured.noise, "method": measured.method,
                "protocol": measured.protocol, "n": int(measured.n),
                "best_mean": measured.best_mean, "best_std": measured.best_std,
                "last_mean": measured.last_mean, "last_std": measured.last_std,
                "published": ref.value, "published_std": ref.std, "published_metric": ref.metric,
                "source": ref.source, "table": ref.table,
                "protocol_differs": protocol_remark(measured.protocol, measured.method, ref),
                "note": ref.note,
            })
    return pd.DataFrame(rows)


def _number(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"


def render_comparison(summary: pd.DataFrame, fmt: str = "markdown", reference: pd.DataFrame | None = None) -> str:
    """The measured cells beside the published numbers for the same dataset, noise and method."""
    if fmt not in ("markdown", "latex"):
        raise BenchError(f"--compare-paper needs --format markdown or latex, not {fmt} "
                         "(the CSV output is a fixed contract of measured numbers only)")
    reference = load_reference() if reference is None else reference
    pairs = compare_with_reference(summary, reference)
    if pairs.empty:
        measured = ", ".join(sorted({f"{r.dataset} {r.noise} {r.method}" for r in summary.itertuples()}))
        covered = ", ".join(sorted({f"{r.dataset} {r.noise} {r.method}" for r in reference.itertuples()}))
        text = (f"Published numbers: none for the measured cells ({measured}). "
                f"The reference CSVs cover: {covered or 'nothing'}.")
        return ("% " + text if fmt == "latex" else text) + "\n"
    header = ["Dataset", "Noise", "Method", "n", "Measured Best", "Measured Last", "Published", "Published metric",
              "Source", "Protocol"]
    body = [[r.dataset, r.noise, r.method, str(r.n), _number(r.best_mean, r.best_std), _number(r.last_mean, r.last_std),
             _number(r.published, r.published_std), r.published_metric, f"{r.source}, {r.table}",
             r.protocol_differs or "same recipe"] for r in pairs.itertuples()]
    caption = ("Measured test accuracy (%) beside published numbers for the same dataset, noise and method. "
               "'unstated': the source does not say whether its number is the best or the last-epochs "
               "accuracy. A protocol remark means the numbers were not produced by the same recipe and "
               "differences may come from the recipe, not the method.")
    if fmt == "markdown":
        from tabulate import tabulate

        return caption + "\n\n" + tabulate(body, headers=header, tablefmt="github", disable_numparse=True) + "\n"
    from noisybench.results.tables import _latex_escape

    lines = ["\\begin{table}[t]\n\\centering", f"\\caption{{{_latex_escape(caption)}}}",
             "\\begin{tabular}{" + "l" * 3 + "r" + "c" * 3 + "l" + "p{4cm}" * 2 + "}\n\\toprule",
             " & ".join(header) + " \\\\\n\\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in row) + " \\\\" for row in body]
    lines.append("\\bottomrule\n\\end{tabular}\n\\end{table}\n")
    return "\n".join(lines)
