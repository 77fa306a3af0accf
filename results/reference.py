"""Published numbers (results/reference/*.csv) and their place beside measured ones.

Every CSV row is one number a source prints, with the source named precisely enough to check:

    source          where the number was read (paper and version, or repository, file and commit)
    table           the table (or README section) in that source
    dataset, noise  in this project's names (noise canonicalised by noise.parse_noise)
    method          this project's registry name
    metric          best | last | unstated (the source does not say which)
    value, std      test accuracy in percent, as printed; std empty when the source gives none
    backbone        the network the source trained
    protocol        the source's recipe in words
    bench_protocol  the noisybench protocol that reproduces that recipe, empty when none does
    note            caveats (second-hand quotes, missing std, unclear averaging, a suspect cell)

and, optional (empty where a file lacks the column):

    n               the runs the source averaged (empty: unstated)
    method_in_paper, noise_in_paper   the names the source prints for them

Only numbers read in a nameable source go in; a number that could not be found stays out.
Held now: the Co-teaching repository's README (and a second-hand quote of its paper), every
number of the LEND paper's Tables 1-3 (lend_paper_tables.csv), CausalNL's Fashion-MNIST rows of
CE and Co-teaching (causalnl_fmnist_table1.csv) and Co-teaching's MNIST Table 4
(coteaching_paper_table4_mnist.csv); each transcribed with its caveats in the project's shared
data/published/SOURCE.md.

`bench table --compare-paper` matches rows on (dataset, noise, method) -- the measured row's registry
name, whatever its label adds (--hp overrides, the marks of results/labels.py) --, compares measured Best
with published Best and Last with Last, and gives each pair a verdict (results/verdict.py)
where the metric is stated, the recipe is the published one and our n >= 2.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from noisybench.core.errors import BenchError
from noisybench.results.comparison import COMPARISON_COLUMNS, FORMATS
from noisybench.results.labels import METHOD_NAME, method_sort_key, with_label_data
from noisybench.results.verdict import NOT_JUDGED, judge

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE_COLUMNS = ["source", "table", "dataset", "noise", "method", "metric", "value", "std", "backbone",
                     "protocol", "bench_protocol", "note"]
OPTIONAL_COLUMNS = ["n", "method_in_paper", "noise_in_paper"]
METRICS = ("best", "last", "unstated")

def _decimals(text: str) -> int:
    """Digits printed after the point: '52.71' -> 2, '66.8' -> 1, '70' -> 0."""
    return len(text.partition(".")[2])


def load_reference(directory=REFERENCE_DIR) -> pd.DataFrame:
    """All reference rows, checked: known metric names, numeric values, canonical noise specs.

    ``value_decimals`` keeps how many decimals the source printed (the verdict allows for the
    rounding); the optional columns are empty where a file lacks them."""
    import noisybench.noise as noise

    frames = []
    for path in sorted(Path(directory).glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; every reference CSV has {REFERENCE_COLUMNS}")
        bad = sorted(set(frame["metric"]) - set(METRICS))
        if bad:
            raise ValueError(f"{path}: metric {bad} is not one of {METRICS}")
        for column in OPTIONAL_COLUMNS:
            if column not in frame.columns:
                frame[column] = ""
        frame["value_decimals"] = [_decimals(text.strip()) for text in frame["value"]]
        for column in ("value", "std", "n"):
            frame[column] = [float(text) if text.strip() else math.nan for text in frame[column]]
        frame["method_in_paper"] = [given or ours for given, ours in zip(frame["method_in_paper"], frame["method"])]
        frame["noise"] = [noise.parse_noise(text).text for text in frame["noise"]]
        frame["file"] = path.name
        frames.append(frame[REFERENCE_COLUMNS + OPTIONAL_COLUMNS + ["value_decimals", "file"]])
    if not frames:
        return pd.DataFrame(columns=REFERENCE_COLUMNS + OPTIONAL_COLUMNS + ["value_decimals", "file"])
    return pd.concat(frames, ignore_index=True)


def protocol_remark(measured, reference_row) -> str:
    """Empty when the measured cell (a summary row with results/labels.py's LABEL_DATA) used the
    recipe the published number came from; else why not."""
    reasons = []
    recipe_changed = measured.protocol != measured.protocol_name  # the label shows command-line changes
    if not reference_row.bench_protocol:
        reasons.append(f"no noisybench protocol reproduces the source's recipe ({reference_row.protocol}; "
                       f"{reference_row.backbone}); measured with {measured.protocol}")
    elif measured.protocol_name != reference_row.bench_protocol or recipe_changed:
        reasons.append(f"measured with {measured.protocol}, published with {reference_row.bench_protocol} "
                       f"({reference_row.protocol}; {reference_row.backbone})")
    if measured.hparams:
        reasons.append("measured with hyperparameter overrides")
    return "; ".join(reasons)


def _present(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def verdict_of(measured, ref, remark: str) -> dict:
    """The compared metric's measured number, the difference and the verdict of one pair.

    Best is compared with Best and Last with Last; a number of unstated metric is shown beside
    both and not judged, and neither is a cell whose recipe is not the published one."""
    if ref.metric == "unstated":
        return dict(measured_mean=math.nan, measured_std=math.nan, difference=math.nan, bound=math.nan,
                    verdict=NOT_JUDGED, judged_by="metric unstated")
    mean, std = getattr(measured, f"{ref.metric}_mean"), getattr(measured, f"{ref.metric}_std")
    result = judge(mean, std, int(measured.n), ref.value, ref.std if _present(ref.std) else None,
                   int(ref.n) if _present(ref.n) else None, int(ref.value_decimals))
    verdict, judged_by = result.verdict, result.rule
    if remark and verdict != NOT_JUDGED:
        verdict, judged_by = NOT_JUDGED, "recipe differs"
    return dict(measured_mean=mean, measured_std=std, difference=result.difference,
                bound=result.bound if verdict != NOT_JUDGED else math.nan, verdict=verdict, judged_by=judged_by)


def compare_with_reference(summary: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """One row per (measured cell, published number) pair with the same dataset, noise and method
    (COMPARISON_COLUMNS), sorted like the tables: dataset, protocol, noise, method, Best before Last."""
    from noisybench.results.tables import noise_sort_key

    summary = with_label_data(summary)
    rows = []
    for measured in summary.itertuples():
        matches = reference[(reference.dataset == measured.dataset) & (reference.noise == measured.noise)
                            & (reference.method == measured.method_name)]
        for ref in matches.itertuples():
            remark = protocol_remark(measured, ref)
            rows.append({
                "dataset": measured.dataset, "protocol": measured.protocol, "noise": measured.noise,
                "method": measured.method, METHOD_NAME: measured.method_name, "metric": ref.metric,
                "n": int(measured.n),
                **verdict_of(measured, ref, remark),
                "published": ref.value, "published_std": ref.std, "published_n": ref.n,
                "best_mean": measured.best_mean, "best_std": measured.best_std,
                "last_mean": measured.last_mean, "last_std": measured.last_std,
                "method_in_paper": ref.method_in_paper, "source": ref.source, "table": ref.table,
                "backbone": ref.backbone, "bench_protocol": ref.bench_protocol, "protocol_differs": remark,
                "note": ref.note, "published_decimals": int(ref.value_decimals),
            })
    if not rows:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    pairs = pd.DataFrame(rows)
    order = pairs.apply(lambda r: (r.dataset, r.protocol, noise_sort_key(r.noise),
                                   method_sort_key(r.method, r.method_name), METRICS.index(r.metric)), axis=1)
    return pairs.iloc[sorted(range(len(pairs)), key=lambda i: order.iloc[i])].reset_index(drop=True)


def unmatched_cells(summary: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """'dataset noise method' of every measured cell no published number matches."""
    summary = with_label_data(summary)
    keys = set(zip(reference.dataset, reference.noise, reference.method))
    return sorted({f"{r.dataset} {r.noise} {r.method}" for r in summary.itertuples()
                   if (r.dataset, r.noise, r.method_name) not in keys})


def render_comparison(summary: pd.DataFrame, fmt: str = "markdown", reference: pd.DataFrame | None = None) -> str:
    """The measured cells beside the published numbers for the same dataset, noise and method,
    with the difference and the verdict: Markdown, LaTeX, or CSV (COMPARISON_COLUMNS)."""
    if fmt not in FORMATS:
        raise BenchError(f"--compare-paper: --format {fmt} is not one of {', '.join(FORMATS)}")
    reference = load_reference() if reference is None else reference
    pairs = compare_with_reference(summary, reference)
    if pairs.empty and fmt != "csv":
        measured = ", ".join(sorted({f"{r.dataset} {r.noise} {r.method}" for r in summary.itertuples()}))
        covered = "; ".join(f"{dataset} {', '.join(sorted(set(rows.noise)))} "
                            f"({', '.join(sorted(set(rows.method)))})" for dataset, rows in reference.groupby("dataset"))
        text = (f"Published numbers: none for the measured cells ({measured}). "
                f"The reference CSVs cover: {covered or 'nothing'}.")
        return ("% " + text if fmt == "latex" else text) + "\n"
    return FORMATS[fmt](pairs, unmatched_cells(summary, reference))


def table_with_comparison(summary: pd.DataFrame, fmt: str, test: str = "welch", options=None) -> str:
    """`bench table --compare-paper`: the measured table, then the comparison of the cells it
    shows.  As CSV, the comparison alone: each of its rows carries the measured numbers too, and
    one stream holds one CSV."""
    from noisybench.results.tables import TableOptions, render, select

    chosen = select(summary, options or TableOptions())
    if fmt == "csv":
        return render_comparison(chosen, "csv")
    return render(summary, fmt, test, options) + "\n" + render_comparison(chosen, fmt)
