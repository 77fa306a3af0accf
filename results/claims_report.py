"""`bench claims`'s outputs: the verdict table (Markdown, LaTeX, CSV) and one figure per claim.

Values are in percent: every quantity a claim compares is a fraction (an accuracy, a precision, a
kept share, a disagreement rate) or a constant on that scale.
"""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np

from noisybench.methods.claims import Claim, Quantity
from noisybench.results.claims import HOLDS, UNTESTED, Judgement, Trial, counted_lines, finder, window_epochs

RULE = ("Verdict, per claim and cell: each seed's side is its mean over the window (in %); the claim holds in a "
        "seed when the comparison is strictly true. holds / fails: in every seed; mixed: the seeds disagree, or "
        "they agree but the mean difference is within the seeds' std (too close to call); untested: a seed "
        "lacks what the claim needs (the reason is given) -- never holds on missing data.")


def _pm(values: dict[int, float]) -> str:
    if not values:
        return "–"
    xs = np.array(list(values.values())) * 100.0
    return f"{xs.mean():.1f} ± {xs.std(ddof=1):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def _window_text(claim: Claim, side: Quantity) -> str:
    return (side.window or claim.window).text


def measured(j: Judgement) -> str:
    """``left relation right`` with each side's mean ± std over seeds, or the sides' names if untested."""
    c = j.claim
    return f"{c.left.name} {_pm(j.left)} {c.relation} {c.right.name} {_pm(j.right)}"


def verdict_text(j: Judgement) -> str:
    return f"{j.verdict} ({j.note})" if j.note else j.verdict


def _windows(j: Judgement) -> str:
    texts = dict.fromkeys(_window_text(j.claim, s) for s in (j.claim.left, j.claim.right) if s.metric is not None)
    return "; ".join(texts) or j.claim.window.text


def _sections(judgements: list[Judgement]):
    sections: dict[tuple[str, str], list[Judgement]] = {}
    for j in judgements:
        sections.setdefault((j.dataset, j.protocol), []).append(j)
    return sections.items()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(judgements: list[Judgement]) -> str:
    out = []
    for (dataset, protocol), rows in _sections(judgements):
        seeds = sorted({len(j.left) for j in rows if j.left})
        out += [f"Claims on {dataset}, protocol {protocol} (values in %, mean ± std over seeds"
                f"{', n = ' + '/'.join(map(str, seeds)) if seeds else ''}):", "",
                "| Method | Noise | Claim | Source | Window | Measured | Verdict |",
                "|---|---|---|---|---|---|---|"]
        for j in rows:
            verdict = f"**{j.verdict}**" + (f" ({j.note})" if j.note else "")
            out.append("| " + " | ".join(_md(x) for x in (
                j.method, j.noise, f"{j.claim.name}: {j.claim.sentence}", j.claim.source, _windows(j),
                measured(j), verdict)) + " |")
        out += ["", RULE, ""]
    return "\n".join(out).rstrip() + "\n"


def _tex(text: str) -> str:
    text = text.replace("\\", "\\textbackslash{}")
    for char in "&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text.replace("±", "$\\pm$").replace("~", "\\textasciitilde{}").replace("<", "$<$").replace(">", "$>$")


def to_latex(judgements: list[Judgement]) -> str:
    out = ["% noisybench claims; needs \\usepackage{booktabs}"]
    for (dataset, protocol), rows in _sections(judgements):
        label = re.sub(r"[^a-z0-9]+", "-", f"claims-{dataset}-{protocol}".lower()).strip("-")
        out += ["", "\\begin{table}[t]", "\\centering", "\\small",
                f"\\caption{{Each method's own claim, tested on {_tex(dataset)}, protocol {_tex(protocol)}: "
                f"values in \\%, mean $\\pm$ std over seeds. {_tex(RULE)}}}",
                "\\begin{tabular}{llp{4.2cm}p{2.6cm}p{3.6cm}p{2.6cm}}", "\\toprule",
                "Method & Noise & Claim & Source & Measured & Verdict \\\\", "\\midrule"]
        for j in rows:
            out.append(" & ".join(_tex(x) for x in (
                j.method, j.noise, f"{j.claim.name}: {j.claim.sentence} ({_windows(j)})", j.claim.source,
                measured(j), verdict_text(j))) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", f"\\label{{tab:{label}}}", "\\end{table}"]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ["dataset", "protocol", "noise", "method", "claim", "source", "sentence", "window", "left",
               "left_mean", "left_std", "relation", "right", "right_mean", "right_std", "n", "seeds_holding",
               "verdict", "note", "left_by_seed", "right_by_seed"]


def _stats(values: dict[int, float]) -> tuple[str, str]:
    if not values:
        return "", ""
    xs = np.array(list(values.values())) * 100.0
    return f"{xs.mean():.4f}", (f"{xs.std(ddof=1):.4f}" if len(xs) > 1 else "")


def to_csv(judgements: list[Judgement]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for j in judgements:
        c = j.claim
        by_seed = lambda v: ";".join(f"{s}:{100 * x:.4f}" for s, x in sorted(v.items()))  # noqa: E731
        writer.writerow([j.dataset, j.protocol, j.noise, j.method, c.name, c.source, c.sentence, _windows(j),
                         c.left.name, *_stats(j.left), c.relation, c.right.name, *_stats(j.right), j.n,
                         j.held if j.verdict != UNTESTED else "", j.verdict, j.note, by_seed(j.left),
                         by_seed(j.right)])
    return buffer.getvalue()


def render(judgements: list[Judgement], fmt: str) -> str:
    return {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](judgements)


# --------------------------------------------------------------------------------------
# Figures: the two quantities over epochs, mean over seeds with a ±std band, window shaded
# --------------------------------------------------------------------------------------
def _curve(claim: Claim, side: Quantity, trials: list[Trial], find) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(epochs, mean, std) in percent of a metric side over the cell's seeds, or None."""
    per_seed = []
    for trial in trials:
        source = find(side.method, trial) if side.method else trial
        if source is None:
            continue
        lines = counted_lines(claim, source.lines) if side.method is None else source.lines
        per_seed.append({m["epoch"]: m[side.metric] for m in lines
                         if isinstance(m.get(side.metric), (int, float)) and math.isfinite(m[side.metric])})
    epochs = sorted(set().union(*per_seed)) if per_seed else []
    if not epochs:
        return None
    values = np.array([[s.get(e, np.nan) for e in epochs] for s in per_seed], dtype=float) * 100.0
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0, ddof=1) if len(per_seed) > 1 else np.full(len(epochs), np.nan)
    return np.array(epochs, dtype=float), mean, std


def _level(side: Quantity, trials: list[Trial]) -> float | None:
    if side.value is not None:
        return 100.0 * side.value
    rates = [t.realised_rate for t in trials if t.realised_rate is not None]
    return 100.0 * (1.0 - float(np.mean(rates))) if rates else None


def plot_claim(judgements: list[Judgement], cells: dict[tuple, list[Trial]], find, out, dpi: int = 100):
    """One figure for one claim of one method: a panel per noise setting, the claim's two sides
    against epoch (solid: left, dashed: right; mean over seeds with a ±std band; a baseline or a
    constant as a dotted line), the window shaded, the verdict in the panel's title."""
    from noisybench.results.plots import CURVE_PANEL_INCHES, new_figure
    from noisybench.results.style import method_color

    ncols = min(3, len(judgements))
    nrows = math.ceil(len(judgements) / ncols)
    figure = new_figure(CURVE_PANEL_INCHES[0] * ncols, CURVE_PANEL_INCHES[1] * nrows, dpi)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    legend: dict[str, object] = {}
    for ax, j in zip(axes, judgements):
        claim, trials = j.claim, cells[(j.dataset, j.protocol, j.noise, j.method)]
        total = max((m.get("epoch", 0) for t in trials for m in t.lines), default=0)
        for side, style in ((claim.left, "-"), (claim.right, "--")):
            color = method_color(side.method or trials[0].base)  # a side of another method, or the cell's own
            if side.metric is None:
                level = _level(side, trials)
                if level is not None:
                    line = ax.axhline(level, color="0.4", linestyle=":", linewidth=1.2, gid=f"level|{side.name}")
                    legend.setdefault(side.name, line)
                continue
            curve = _curve(claim, side, trials, find)
            if curve is None:
                continue
            x, mean, std = curve
            (line,) = ax.plot(x, mean, color=color, linestyle=style, linewidth=1.6, gid=f"{side.name}")
            legend.setdefault(side.name, line)
            banded = np.isfinite(std)
            if banded.any():
                ax.fill_between(x[banded], (mean - std)[banded], (mean + std)[banded], color=color, alpha=0.18,
                                linewidth=0)
        for side in (claim.left, claim.right):
            window = side.window or claim.window
            if window.kind != "round" and total:
                first, last = window_epochs(window, total)
                ax.axvspan(first - 0.5, last + 0.5, color="0.85", alpha=0.4, linewidth=0, zorder=0)
        mark = "" if j.verdict == UNTESTED else f" (n={j.n})"
        ax.set_title(f"{j.dataset} · {j.noise}: {j.verdict}{mark}", fontsize=10,
                     color="black" if j.verdict in (HOLDS, UNTESTED) else "#b22222")
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(judgements):]:
        ax.set_visible(False)
    first = judgements[0]
    figure.suptitle(f"{first.method}: {first.claim.name} -- {first.claim.source}", fontsize=9)
    figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=max(1, len(legend)),
                  fontsize=7, frameon=False)
    if out is not None:
        figure.savefig(out)
    return figure


def figure_name(method: str, claim: str, dataset: str, protocol: str) -> str:
    """claim_<dataset>_<protocol>_<method>_<claim>.png; a row's brackets become plain text
    (``quick[epochs=20]`` -> ``quick-epochs=20``), any other odd character a dash."""
    text = f"claim_{dataset}_{protocol}_{method}_{claim}".replace("[", "-").replace("]", "").replace(",", "-")
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-") + ".png"


def write_figures(judgements: list[Judgement], trials: list[Trial], folder: Path, dpi: int = 100) -> list[Path]:
    cells: dict[tuple, list[Trial]] = {}
    for t in trials:
        cells.setdefault((*t.setting, t.method), []).append(t)
    find = finder(trials)
    groups: dict[tuple, list[Judgement]] = {}
    for j in judgements:
        groups.setdefault((j.dataset, j.protocol, j.method, j.claim.name), []).append(j)
    written = []
    for (dataset, protocol, method, name), group in groups.items():
        path = folder / figure_name(method, name, dataset, protocol)
        plot_claim(group, cells, find, path, dpi)
        written.append(path)
    return written
