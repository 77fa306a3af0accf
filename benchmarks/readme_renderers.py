"""How benchmarks/readme_numbers.py shows a block's trials other than as a table."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parent.parent


def _by_seed(trials: pd.DataFrame, method: str, noise: str, part: str) -> pd.Series:
    rows = trials[(trials["method"] == method) & (trials["noise"] == noise)]
    return rows.set_index("seed")[part].sort_index() * 100.0


def paired(block, trials: pd.DataFrame, store: Path) -> str:
    """Seed by seed, B's number minus A's, with the one-sided paired and Welch tests: a sentence per
    (A, B, part, noise) of ``block.pairs``."""
    lines = []
    for base, other, part, noise in block.pairs:
        a, b = _by_seed(trials, base, noise, part), _by_seed(trials, other, noise, part)
        seeds = a.index.intersection(b.index)
        diff = (b[seeds] - a[seeds]).to_numpy()
        p_paired = stats.ttest_rel(b[seeds], a[seeds], alternative="greater").pvalue
        p_welch = stats.ttest_ind(b, a, equal_var=False, alternative="greater").pvalue
        shown = ", ".join(f"{d:+.1f}" for d in diff) if len(diff) <= 10 else f"{len(diff)} seeds"
        lines.append(f"- {noise} {part.capitalize()}, {other} − {base} per seed: {shown}; ahead on "
                     f"{int((diff > 0).sum())} of {len(diff)}, mean {diff.mean():+.2f}; one-sided paired t-test "
                     f"p = {p_paired:.3g}, Welch's p = {p_welch:.3g}.")
    return "\n".join(lines) + "\n"


def epochs(block, trials: pd.DataFrame, store: Path) -> str:
    """The mean over seeds of each of ``block.metrics`` at ``block.epochs``, a row per epoch, a
    column per (method, noise, metric)."""
    from noisybench.results.aggregate import load_epochs

    frame = load_epochs(store)
    frame = frame[frame["path"].isin(trials["path"])] if "path" in frame else frame.merge(
        trials[["method", "noise", "seed", "protocol"]], on=["method", "noise", "seed", "protocol"])
    columns = [(m, n, metric) for m in block.methods for n in block.noises for metric in block.metrics]
    head = "| epoch | " + " | ".join(f"{m} {n}: {metric}" for m, n, metric in columns) + " |"
    rows = [head, "|" + "---|" * (len(columns) + 1)]
    for epoch in block.epochs:
        cells = []
        for method, noise, metric in columns:
            values = frame[(frame["method"] == method) & (frame["noise"] == noise) & (frame["epoch"] == epoch)][metric]
            cells.append(f"{values.mean():.3f}" if len(values) else "–")
        rows.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def classes(block, trials: pd.DataFrame, store: Path) -> str:
    """`bench classes` over the block's trials."""
    from noisybench.results.classes import class_tables, load_class_accuracy

    frame = load_class_accuracy(store)
    keep = frame.merge(_only(block, trials)[["method", "noise", "seed", "protocol"]],
                       on=["method", "noise", "seed", "protocol"])
    return class_tables(keep)


def command_output(block, bench, prepare=None) -> str:
    """The output of the last of ``block.command``'s steps (joined by ``&&``; ``{dir}`` is a fresh
    directory they run in; a step starting ``python`` runs with this interpreter), indented as a code
    block unless ``block.indent`` is False (a command that prints Markdown), with the directory
    shortened so that the README does not name a temporary folder (nor this checkout's path)."""
    with tempfile.TemporaryDirectory() as folder:
        if prepare is not None:
            prepare(Path(folder))
        for step in block.command.split(" && "):
            argv = shlex.split(step.replace("{dir}", folder).replace("{repo}", str(REPO)))
            if argv[0] == "python":
                done = subprocess.run([sys.executable, *argv[1:]], cwd=folder, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{step} failed:\n{done.stderr}")
                text = done.stdout
            else:
                text = bench(argv[1:] if argv[0] == "bench" else argv, cwd=folder)
        text = text.replace(folder, "/path/to/checkout")
    text = text.replace(f"{REPO}/", "")  # a file written into the repository, named as the README's reader has it
    text = re.sub(r"\n{3,}", "\n\n", text.strip("\n"))
    if not block.indent:
        return text + "\n"
    return "\n".join(("    " + line) if line else "" for line in text.splitlines()) + "\n"


def _only(block, trials: pd.DataFrame) -> pd.DataFrame:
    keep = trials
    if block.methods:
        keep = keep[keep["method"].isin(block.methods)]
    if block.noises:
        keep = keep[keep["noise"].isin(block.noises)]
    return keep


def timing(block, trials: pd.DataFrame, store: Path) -> str:
    """What the block's sweep cost, per method: the median seconds of an epoch over all its trials'
    epochs, that against standard's, the epochs a trial trained (a method may train past the
    protocol's length: Me-Momentum's budget) and a trial's mean seconds; then the sweep's wall time,
    from the first trial's start to the last one's end (done.json: finished_at and seconds)."""
    import json

    rows, starts, ends = [], [], []
    for method, group in trials.groupby("method", sort=False):
        seconds, epochs_trained, trial_seconds = [], [], []
        for path in group["path"]:
            lines = [json.loads(line) for line in (Path(path) / "metrics.jsonl").read_text().splitlines() if line]
            seconds += [line["seconds"] for line in lines if "seconds" in line]
            epochs_trained.append(len(lines))
            done = json.loads((Path(path) / "done.json").read_text())
            trial_seconds.append(done["seconds"])
            starts.append(done["finished_at"] - done["seconds"])
            ends.append(done["finished_at"])
        rows.append((method, float(pd.Series(seconds).median()), sum(epochs_trained) / len(epochs_trained),
                     sum(trial_seconds) / len(trial_seconds)))
    standard = next((median for method, median, _, _ in rows if method == "standard"), None)
    lines = ["| Method | s per epoch (median) | × standard | epochs per trial | s per trial (mean) |",
             "|---|---|---|---|---|"]
    for method, median, epochs_trained, trial_seconds in sorted(rows):
        ratio = f"{median / standard:.1f}" if standard else "–"
        lines.append(f"| {method} | {median:.2f} | {ratio} | {epochs_trained:.0f} | {trial_seconds:.0f} |")
    wall = (max(ends) - min(starts)) / 60 if starts else float("nan")
    lines += ["", f"{len(trials)} trials. One seed of one noise setting costs {sum(r[3] for r in rows) / 60:.0f} min "
              f"of trial time over all {len(rows)} methods; the whole sweep took {wall:.0f} min of wall time."]
    return "\n".join(lines) + "\n"


RENDERERS = {"paired": paired, "epochs": epochs, "classes": classes, "timing": timing}
