"""Regenerate every measured number in the READMEs: `make readme-numbers`.

Each number lives between two markers in a README,

    <!-- numbers: NAME -->
    ...what this script writes...
    <!-- /numbers -->

and NAME is a block of ``BLOCKS`` (benchmarks/readme_blocks.py): the sweep that measures it and how
it is shown (a table, seed-by-seed differences with their tests, a metric at chosen epochs, the
per-class split, a command's own output).  Every sweep trains into one store per dataset under
.readme-runs/ (resumable: a rerun trains only what is missing), so a cell that two tables share is
one set of trials and the tables cannot disagree on it.  Trials run one CPU thread per process, the
thread count every number here is measured at (it changes float sums).

    python benchmarks/readme_numbers.py            train what is missing, rewrite every block
    python benchmarks/readme_numbers.py --check    only check that markers and BLOCKS agree (no training)
    python benchmarks/readme_numbers.py --only lend-batch-64   one block (and its sweep)
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_blocks import BLOCKS, Block  # noqa: E402  (beside this script, not part of the package)

STORES = REPO / ".readme-runs"
MARKER = re.compile(r"<!-- numbers: ([a-z0-9-]+) -->\n(.*?)<!-- /numbers -->", re.S)


def readme_files() -> list[Path]:
    return sorted(p for p in REPO.glob("**/README.md") if ".venv" not in p.parts and ".readme-runs" not in p.parts
                  and "examples" not in p.parts)


def found_markers() -> dict[str, list[Path]]:
    where: dict[str, list[Path]] = {}
    for path in readme_files():
        for match in MARKER.finditer(path.read_text()):
            where.setdefault(match.group(1), []).append(path)
    return where


def check(blocks: list[Block] = BLOCKS) -> list[str]:
    """Problems between the READMEs' markers and ``blocks`` (empty: they agree)."""
    problems, where = [], found_markers()
    for block in blocks:
        paths = where.get(block.name, [])
        if [p.relative_to(REPO).as_posix() for p in paths] != [block.file]:
            problems.append(f"block {block.name}: expected once in {block.file}, found in "
                            f"{[p.relative_to(REPO).as_posix() for p in paths] or 'no README'}")
    for name in set(where) - {b.name for b in BLOCKS}:
        problems.append(f"marker {name} in {where[name][0].relative_to(REPO)} has no block in readme_blocks.py")
    for block in blocks:
        for path in where.get(block.name, []):
            body = dict((m.group(1), m.group(2)) for m in MARKER.finditer(path.read_text()))[block.name]
            if block.sweep and f"bench run {block.sweep}" not in body:
                problems.append(f"block {block.name} in {block.file} does not show its command `bench run "
                                f"{block.sweep}`; run make readme-numbers")
    return problems


def store_for(block: Block) -> Path:
    dataset = re.search(r"--dataset (\S+)", block.sweep)
    return STORES / (dataset.group(1) if dataset else "digits")


def bench(argv: list[str], capture: bool = True, cwd: Path | str = REPO) -> str:
    """Run `bench` at one CPU thread; captured: its stdout and stderr together, as a terminal shows them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if capture else {}
    done = subprocess.run([str(Path(sys.executable).parent / "bench"), *argv], cwd=cwd, env=env, text=True,
                          **streams)
    if done.returncode != 0:
        raise SystemExit(f"bench {shlex.join(argv)} failed ({done.returncode}):\n{done.stdout if capture else ''}")
    return done.stdout if capture else ""


def train(block: Block) -> None:
    if block.sweep:
        print(f"  bench run {block.sweep}", file=sys.stderr, flush=True)
        bench(["run", *shlex.split(block.sweep), "--results", str(store_for(block)), "--trials-per-gpu", "2"],
              capture=False)


def sweep_specs(block: Block):
    from noisybench.bench.sweep import SweepRequest, build_specs

    args = argparse.ArgumentParser(add_help=False)
    for flag in ("--methods", "--noise", "--seeds", "--dataset", "--protocol", "--model", "--epochs",
                 "--batch-size"):
        args.add_argument(flag)
    args.add_argument("--hp", action="append", default=[])
    ns = args.parse_args(shlex.split(block.sweep))
    return build_specs(SweepRequest(
        methods=ns.methods, noise=ns.noise, seeds=ns.seeds, dataset=ns.dataset or "digits", protocol=ns.protocol,
        model=ns.model, epochs=int(ns.epochs) if ns.epochs else None,
        batch_size=int(ns.batch_size) if ns.batch_size else None, hp=tuple(ns.hp)))


def sweep_trials(block: Block):
    from noisybench.results.aggregate import load_trials

    trials = load_trials(store_for(block))
    wanted = {str(store_for(block) / s.dirname) for s in sweep_specs(block)}
    chosen = trials[trials["path"].isin(wanted)] if not trials.empty else trials
    if len(chosen) != len(wanted):
        raise SystemExit(f"block {block.name}: {len(wanted) - len(chosen)} of its trials are not finished in "
                         f"{store_for(block)}; run without --check to train them")
    return chosen


def copy_trials(block: Block, target: Path) -> None:
    """The block's finished trials, copied from the shared store into a store of their own."""
    import shutil

    for path in sweep_trials(block)["path"]:
        shutil.copytree(path, target / Path(path).name)


def render(block: Block, stamp: str) -> str:
    from noisybench.results.aggregate import summarize
    from noisybench.results.tables import TableOptions
    from noisybench.results.tables import render as render_table

    import readme_renderers as renderers

    if block.show == "stdout":  # a command's own output, run in a fresh directory (holding runs/: the sweep's trials)
        prepare = (lambda folder: copy_trials(block, folder / "runs")) if block.sweep else None
        text = renderers.command_output(block, bench, prepare)
        sweep = f"`bench run {block.sweep} --results runs`, then " if block.sweep else ""
        shown = "`, `".join(step.replace("{dir}/", "").replace("{repo}/", "") for step in block.command.split(" && "))
        when = stamp if block.measured else stamp.split(",")[0]
        return f"{block.intro}{sweep}`{shown}` ({when}):\n\n" + text
    trials = sweep_trials(block)
    head = f"{block.intro}`bench run {block.sweep}`{block.note} ({stamp}):\n\n"
    if block.show == "table":
        options = TableOptions(parts=block.columns, methods=block.methods, noises=block.noises)
        return head + render_table(summarize(trials), "markdown", block.test, options)
    return head + renderers.RENDERERS[block.show](block, trials, store_for(block))


def rewrite(blocks: list[Block], stamp: str) -> None:
    texts = {b.name: render(b, stamp) for b in blocks}
    for path in readme_files():
        original = path.read_text()
        updated = MARKER.sub(lambda m: (f"<!-- numbers: {m.group(1)} -->\n{texts[m.group(1)].rstrip()}\n<!-- /numbers -->"
                                        if m.group(1) in texts else m.group(0)), original)
        if updated != original:
            path.write_text(updated)
            print(f"rewrote {path.relative_to(REPO)}", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check markers against BLOCKS only; no training")
    parser.add_argument("--only", help="comma-separated block names")
    parser.add_argument("--train-only", action="store_true", help="train the blocks' sweeps; rewrite nothing")
    args = parser.parse_args(argv)
    chosen = [b for b in BLOCKS if not args.only or b.name in args.only.split(",")]
    if args.train_only:
        for block in chosen:
            train(block)
        return 0
    problems = [p for p in check(chosen) if args.check or "does not show its command" not in p]
    if args.check or problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    for block in chosen:
        train(block)
    stamp = f"{datetime.date.today():%-d %B %Y}, {machine()}"
    with contextlib.redirect_stdout(io.StringIO()):
        rewrite(chosen, stamp)
    return 0


def machine() -> str:
    """The machine and the code: the commit, '+dirty' when a tracked file other than a README or a
    figure differs from it (those are what this script rewrites)."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(["git", "-C", str(REPO), "diff", "--name-only", "HEAD"], capture_output=True, text=True)
    code_changed = [f for f in changed.stdout.split() if not f.endswith("README.md") and not f.startswith("results/figures/")]
    commit = head.stdout.strip() + ("+dirty" if code_changed else "") if head.returncode == 0 else None
    return f"{os.cpu_count()}-core CPU, one thread per trial" + (f", commit {commit}" if commit else "")


if __name__ == "__main__":
    sys.exit(main())
