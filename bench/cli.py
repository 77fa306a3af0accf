"""The ``bench`` command.

Bad input ends in one line on stderr (``bench: error: ...``) and exit status 2, with
nothing written.  Sub-commands that live beside what they run (``bench data`` in datasets/,
``bench status`` in slurm/, ``bench plot/report/classes`` in results/, ``bench speed`` in
bench/speed/) are modules with ``register_commands(subparsers)``, imported here by name and
listed in ``COMMAND_MODULES``; their heavy imports wait inside their handlers.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import noisybench.bench.speed.command as speed_commands
import noisybench.datasets.commands as data_commands
import noisybench.results.commands as results_commands
import noisybench.slurm.commands as slurm_commands
from noisybench.bench.trainer.arithmetic_flags import add_arithmetic_arguments, arithmetic_options
from noisybench.bench.sweep_file import apply_sweep_file
from noisybench.core.errors import BenchError
from noisybench.results.paths import check_results_path

# Modules that add sub-commands; each defines register_commands(subparsers).
COMMAND_MODULES = (slurm_commands, data_commands, results_commands, speed_commands)


class DefaultsOnceFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)", but only where it says something: not after a help text that
    already speaks of its default (it would print it twice, "(default ./runs) (default: runs)"),
    not for an option that is unset (None) or an empty list, and not for a flag (--no-wait's
    "(default: True)" would read as if the flag were on)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.nargs == 0 or action.default in (None, [], (), argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other input error; no
    prefix matching (`--seed 3` must not quietly mean `--seeds 3`); every default in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsOnceFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 -- argparse's API
        hint = ""
        if message.startswith("unrecognized arguments") and not message.split(":", 1)[1].strip().startswith("-"):
            hint = "; lists are comma-separated, e.g. --methods standard,gce --noise sym:0.4,pair:0.45"
        raise BenchError(f"{message}{hint} (see `{self.prog} --help`)")


def split_names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


class VersionAction(argparse.Action):
    """--version, worked out only when asked (it may call git)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def version_text() -> str:
    """noisybench's version, and the git commit when it runs from a checkout."""
    from noisybench.core import __version__
    from noisybench.core.provenance import git_commit

    commit = git_commit()
    return f"noisybench {__version__}" + (f" (git {commit})" if commit else "")


# --------------------------------------------------------------------------------------
def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default="standard", help="comma-separated methods (bench list)")
    p.add_argument("--noise", default="sym:0.4", help="comma-separated noise specs, e.g. sym:0.4,pair:0.45")
    p.add_argument("--seeds", default="1", help="N (seeds 0..N-1) or an inclusive range A-B")
    p.add_argument("--dataset", default="digits",
                   help="the dataset (bench list; digits is embedded, the others need --data-root)")
    p.add_argument("--protocol", default=None,
                   help="recipe (default: the dataset's own, see `bench list`; lend-paper on CIFAR)")
    p.add_argument("--model", default=None, help="override the protocol's model")
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override the protocol's batch size")
    p.add_argument("--hp", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="hyperparameter override (repeatable, or comma-separated)")
    p.add_argument("--data-root", default=None, help="dataset root (default: $NOISYBENCH_DATA, else ./data)")
    p.add_argument("--download", action="store_true",
                   help="download CIFAR-10/100 or MNIST into the data root first, through torchvision (needs internet)")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="initial weights: a local state-dict file, e.g. torchvision's ImageNet resnet50-0676ba61.pth "
                        "(the classifier fc is re-initialised for the dataset's classes)")
    p.add_argument("--results", default="runs", help="results directory (default: ./runs)")


def sweep_request(args):
    from noisybench.bench.sweep import SweepRequest

    return SweepRequest(methods=args.methods, noise=args.noise, seeds=args.seeds, dataset=args.dataset,
                        protocol=args.protocol, model=args.model, epochs=args.epochs,
                        batch_size=args.batch_size, hp=tuple(args.hp), data_root=args.data_root,
                        download=args.download, pretrained=args.pretrained,
                        precision=None if args.precision == "auto" else args.precision)


def print_table(results: str, fmt: str = "markdown", specs=None, test: str = "welch", options=None) -> int:
    from noisybench.results.aggregate import load_trials, summarize
    from noisybench.results.tables import render

    trials = load_trials(results)
    if specs is not None and not trials.empty:
        wanted = {str(Path(results) / s.dirname) for s in specs}
        trials = trials[trials["path"].isin(wanted)]
    if trials.empty:
        print(f"no finished trials under {results}", file=sys.stderr)
        return 1
    print(render(summarize(trials), fmt, test, options), end="")
    return 0


def table_options(args, results: str):
    """--columns, --methods, --noise and --split of `bench table`, checked against the store."""
    import noisybench.noise as noise
    from noisybench.results.aggregate import load_trials
    from noisybench.results.labels import method_choices
    from noisybench.results.tables import PARTS, TableOptions

    parts = tuple(split_names(args.columns)) if args.columns else None
    for part in parts or ():
        if part not in PARTS:
            raise BenchError(f"--columns {args.columns}: {part!r} is not one of {', '.join(PARTS)}")
    methods = tuple(split_names(args.methods)) if args.methods else None
    noises = tuple(noise.parse_noise(t).text for t in split_names(args.noise)) if args.noise else None
    trials = load_trials(results)
    labels = method_choices(trials)
    for what, wanted, have in (("--methods", methods, labels), ("--noise", noises, set(trials["noise"]))):
        missing = [w for w in wanted or () if w not in have]
        if missing:
            raise BenchError(f"{what}: {', '.join(missing)} has no finished trial under {results}; "
                             f"there are: {', '.join(sorted(have))}")
    return TableOptions(parts=parts, methods=methods, noises=noises, split_by_noise_kind=args.split == "noise-kind")


def cmd_run(args) -> int:
    from noisybench.bench.launch import run_sweep
    from noisybench.bench.sweep import build_trials, parse_feature_epochs

    started = time.perf_counter()
    apply_sweep_file(args, args.run_parser, args.argv)
    options = slurm_commands.launcher_options(args)
    args.results = str(check_results_path(args.results))  # ~ expanded: the path the trials go to
    if args.checkpoint_every < 1:
        raise BenchError(f"--checkpoint-every {args.checkpoint_every}: must be at least 1 (epochs between "
                         f"checkpoints), e.g. --checkpoint-every 1")
    trials = build_trials(sweep_request(args))  # resolved once: everything after reads these
    feature_epochs = parse_feature_epochs(args.save_features, trials)
    if args.dry_run:
        from noisybench.bench.checks import describe_trials

        print(describe_trials(trials, args.results, rerun_stale=args.rerun_stale, data_root=args.data_root))
        return 0
    # The same trial-function arguments whichever launcher runs the trials: they all run the same function.
    trial_kwargs = dict(device=args.device, data_root=args.data_root, checkpoint_every=args.checkpoint_every,
                        feature_epochs=feature_epochs, **arithmetic_options(args))
    counts = run_sweep(trials, args.results, options, trial_kwargs, rerun_stale=args.rerun_stale)
    if counts is None:  # --no-wait: the jobs go on; bench status / bench table follow them
        return 0
    print()
    print_table(args.results, "markdown", trials, test=args.test)
    print(f"\nresults in {Path(args.results).resolve()} ({len(trials)} trials); the sweep took "
          f"{time.perf_counter() - started:.1f} s; again with: bench table --results {args.results}")
    # A trial handed over to another process (which finished it) is neither this run's nor a failure.
    from noisybench.core.layout import DONE, HANDED_OVER

    return 1 if any(n for state, n in counts.items() if state not in (DONE, HANDED_OVER)) else 0


def cmd_table(args) -> int:
    args.results = str(check_results_path(args.results, must_exist=True))
    from noisybench.results.aggregate import load_trials

    if load_trials(args.results).empty:
        raise BenchError(f"no finished trials under {args.results}; run `bench run --results {args.results}` first")
    options = table_options(args, args.results)
    if args.hparams:  # the appendix table: what each method's cells trained with
        return results_commands.print_hparams_table(args, options)
    if args.compare_paper:  # the table, then published numbers with verdicts (csv: the comparison rows alone)
        from noisybench.results.aggregate import summarize
        from noisybench.results.reference import table_with_comparison

        print(table_with_comparison(summarize(load_trials(args.results)), args.format, args.test, options), end="")
        return 0
    return print_table(args.results, args.format, test=args.test, options=options)


def cmd_noise(args) -> int:
    import numpy as np

    import noisybench.datasets as datasets
    import noisybench.noise as noise

    if args.seed < 0:
        # The labels would be hashed from it all the same, but no trial (--seeds: 0, 1, ...) ever has it.
        raise BenchError(f"--seed {args.seed}: seeds are non-negative; give a trial's seed, e.g. --seed 0")
    spec = noise.parse_noise(args.noise)
    dataset = datasets.load(args.dataset, args.data_root)
    noise.check_noise_for_dataset(spec, dataset, data_root=args.data_root)
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise BenchError(f"--out {out}: directory {out.parent} does not exist; create it first")
    noisy = noise.apply_noise(spec, dataset, args.seed, data_root=args.data_root)
    if out is not None:
        noise.save_labels(out, np.asarray(noisy.labels, dtype=np.int64))
    print(noise.format_noise_report(noisy, dataset.class_names))
    if out is not None:
        print(f"wrote {len(noisy.labels)} noisy training labels (int64, training order) to {out}")
    return 0


def cmd_list(args) -> int:
    if args.hp:
        from noisybench.methods.registry import describe_hparams

        for name, rows in [(name, describe_hparams(name)) for name in split_names(args.hp)]:
            print(f"{name} hyperparameters (--hp {name}.NAME=VALUE; a grid: NAME=A,B):")
            width = max((len(f"{n}: {t} = {d}") for n, t, d, _ in rows), default=0)
            for field_name, kind, default, source in rows:
                print(f"  {f'{field_name}: {kind} = {default}':<{width}}  {source}".rstrip())
        return 0
    import noisybench.datasets as datasets
    import noisybench.noise as noise
    from noisybench.bench import catalogue

    if catalogue.plugins_installed():  # only a plugin's code knows what it registers: import everything
        from noisybench.bench.trainer.protocols import PROTOCOLS
        from noisybench.methods import describe_methods
        from noisybench.methods.networks import describe_models

        methods, models, protocols = describe_methods(), describe_models(), PROTOCOLS
    else:  # read from the source, without torch (bench/catalogue.py)
        methods, models, protocols = catalogue.builtin_methods(), catalogue.builtin_models(), catalogue.builtin_protocols()
    sections = [("methods", methods), ("datasets", datasets.describe_datasets()),
                ("models", models), ("protocols", protocols), ("noise types", noise.noise_kinds())]
    for title, entries in sections:
        print(f"{title}:")
        width = max((len(k) for k in entries), default=0)
        for key, text in entries.items():
            print(f"  {key:<{width}}  {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bench", description="noisybench: compare learning-with-noisy-labels methods")
    parser.add_argument("--version", action=VersionAction, help="print noisybench's version (and git commit) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True

    p = sub.add_parser("run", help="train a sweep (methods x noise x seeds) and print its table")
    add_sweep_arguments(p)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    add_arithmetic_arguments(p)
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                   help="save a resumable checkpoint every N epochs (default 1)")
    p.add_argument("--save-features", default=None, metavar="EPOCHS",
                   help="after these epochs (e.g. 10,100) save the training set's penultimate features with "
                        "clean, noisy and predicted labels in each trial dir, for `bench plot tsne`")
    p.add_argument("--config", default=None, metavar="SWEEP.toml",
                   help="read the sweep from a TOML file (datasets, methods, noise, seeds, protocol, hp grids, "
                        "launcher options: see bench/sweep_file.py); flags given here override it")
    p.add_argument("--dry-run", action="store_true",
                   help="list the sweep's trials and what the results directory already holds of each; run nothing")
    p.add_argument("--rerun-stale", action="store_true",
                   help="stored trials trained by other code (a part's rule_version, or the noisy labels, differ "
                        "from today's) stop the run; with this flag they are moved aside to <results>/.stale/ "
                        "(nothing deleted; bench verify lists them) and trained again")
    results_commands.add_significance_argument(p)
    slurm_commands.add_launcher_arguments(p)
    p.set_defaults(handler=cmd_run, run_parser=p)

    p = sub.add_parser("table", help="the table of a results directory")
    p.add_argument("--results", default="runs")
    p.add_argument("--format", choices=["markdown", "latex", "csv"], default="markdown")
    p.add_argument("--columns", default=None, metavar="PART[,PART]",
                   help="which numbers, in this order: best, last, selected, own (default: all there are)")
    p.add_argument("--methods", default=None, help="only these methods (row labels or names), rows in this order")
    p.add_argument("--noise", default=None, help="only these noise settings, columns in this order")
    p.add_argument("--split", choices=["none", "noise-kind"], default="none",
                   help="noise-kind: one table per noise family (sym, pair, ...), for grids too wide for a page")
    p.add_argument("--compare-paper", action="store_true",
                   help="add the published numbers (results/reference/*.csv) for the same dataset, noise and "
                        "method, with the difference and a verdict (results/README.md); with --format csv "
                        "the comparison rows alone")
    results_commands.add_hparams_argument(p)
    results_commands.add_significance_argument(p)
    p.set_defaults(handler=cmd_table)

    p = sub.add_parser("noise", help="sample noisy labels, print the realised rate and matrices")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--noise", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the noisy training labels here (.npy, int64)")
    p.add_argument("--data-root", default=None)
    p.set_defaults(handler=cmd_noise)

    p = sub.add_parser("list", help="methods, datasets, models, protocols and noise types")
    p.add_argument("--hp", default=None, metavar="METHOD[,METHOD]",
                   help="instead: each hyperparameter of these methods with its default and source")
    p.set_defaults(handler=cmd_list)

    for module in COMMAND_MODULES:
        module.register_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.argv = argv
        return args.handler(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; unfinished trials resume from their last checkpoint on the next run",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
