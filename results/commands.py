"""Sub-commands for figures, reports and the store: `bench plot curves`, `bench plot tsne`,
`bench classes`, `bench claims`, `bench report`, `bench verify`.

Registered through bench.cli.COMMAND_MODULES.  Heavy imports (matplotlib, scikit-learn) happen
inside the handlers, so `bench --help` and the other commands stay fast.
"""
from __future__ import annotations

from pathlib import Path

from noisybench.core.errors import BenchError
from noisybench.results.paths import check_results_path


def _results_dir(results: str) -> Path:
    return check_results_path(results, must_exist=True)


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def filter_epochs(epochs, methods: str | None, noises: str | None, where: str):
    """Keep the rows of the chosen methods (registry name or full row label) and noise settings."""
    import noisybench.noise as noise
    from noisybench.results.labels import chosen_methods, method_choices

    if methods:
        wanted = _split(methods)
        unknown = [m for m in wanted if m not in method_choices(epochs)]
        if unknown:
            raise BenchError(f"--methods: {', '.join(unknown)} has no finished trial under {where}; "
                             f"there are: {', '.join(sorted(set(epochs['method'])))}")
        epochs = epochs[chosen_methods(epochs, wanted)]
    if noises:
        wanted = [noise.parse_noise(text).text for text in _split(noises)]
        unknown = [n for n in wanted if n not in set(epochs["noise"])]
        if unknown:
            raise BenchError(f"--noise: {', '.join(unknown)} has no finished trial under {where}; "
                             f"there are: {', '.join(sorted(set(epochs['noise'])))}")
        epochs = epochs[epochs["noise"].isin(wanted)]
    return epochs


def cmd_plot_curves(args) -> int:
    from noisybench.results.aggregate import load_epochs
    from noisybench.results.labels import method_names_by_label
    from noisybench.results.plots import check_figure_path, method_colors, parse_epoch_range, plot_curves

    root = _results_dir(args.results)
    metrics = _split(args.metric)
    if not metrics:
        raise BenchError("--metric is empty; name a metric of metrics.jsonl, e.g. --metric test_acc")
    out = check_figure_path(args.out or f"curves_{'_vs_'.join(metrics)}.png")
    epochs = load_epochs(root)
    if epochs.empty:
        raise BenchError(f"no finished trials under {root}; run `bench run --results {root}` first")
    colors = method_colors(method_names_by_label(epochs))  # the store's colours, whichever methods are drawn
    epochs = filter_epochs(epochs, args.methods, args.noise, str(root))
    if args.dpi < 10:
        raise BenchError(f"--dpi {args.dpi}: give at least 10 (100 is the screen default, 300 print quality)")
    plot_curves(epochs, metrics, out, where=str(root), colors=colors, dpi=args.dpi,
                epoch_range=parse_epoch_range(args.epochs), sharey=args.sharey, x_axis=args.x)
    print(f"wrote {out}")
    return 0


def cmd_plot_tsne(args) -> int:
    from noisybench.results.plots import check_figure_path, load_feature_snapshot, plot_tsne

    trial = Path(args.trial)
    out = check_figure_path(args.out or f"tsne_{trial.resolve().name}_e{args.epoch}.png")
    if args.subsample is not None and args.subsample < 10:
        raise BenchError(f"--subsample {args.subsample}: t-SNE needs at least 10 points")
    snapshot = load_feature_snapshot(trial, args.epoch)
    _, info = plot_tsne(snapshot, out, subsample=args.subsample, seed=args.seed)
    print(f"wrote {out} ({len(info['index'])} points; predicted labels {100 * info['predicted_accuracy']:.1f}% "
          f"correct, noisy labels {100 * info['noise_rate']:.1f}% wrong)")
    return 0


def cmd_report(args) -> int:
    from noisybench.results.report import write_report

    _results_dir(args.results)
    written = write_report(args.results, args.out, tsne=args.tsne, tsne_subsample=args.tsne_subsample,
                           tsne_seed=args.seed, test=args.test)
    print(f"wrote {written[0]} and {len(written) - 1} figures next to it")
    return 0


def cmd_classes(args) -> int:
    from noisybench.results.classes import class_csv, class_tables, load_class_accuracy

    root = _results_dir(args.results)
    frame = load_class_accuracy(root)
    if frame.empty:
        raise BenchError(f"no finished trial under {root} records per-class test accuracy (trials run before "
                         f"noisybench recorded it lack it); run the sweep again into a new --results directory")
    frame = filter_epochs(frame, args.methods, args.noise, str(root))
    print(class_csv(frame) if args.format == "csv" else class_tables(frame), end="")
    return 0


def cmd_verify(args) -> int:
    """Check every trial of a store; exit 1 when any is damaged (0 once --repair moved them all)."""
    from noisybench.results.integrity import check_store, moved_aside

    root = _results_dir(args.results)
    report = check_store(root, repair=args.repair)
    for trial, problem in report.damaged:
        print(f"damaged  {trial.path.name}: {problem}")
    for trial, target in report.moved:
        print(f"moved    {trial.path.name} -> {target} (the next bench run trains it again)")
    for kind, path, why in moved_aside(root):  # kept, never counted: nothing moved aside is deleted
        print(f"aside    {path.relative_to(root).as_posix()} ({kind}{': ' + why if why else ''})")
    for trial, problem, removed in report.refused_checkpoints:
        print(f"refused  {trial.path.name}: {problem}; " + (
            "removed (the next bench run resumes from an earlier state or restarts the trial)" if removed else
            f"bench run will not load it; bench verify --results {args.results} --repair removes it"))
    for respelt in report.respelt:
        print(f"renamed  {respelt.advice(root)}")
    left = len(report.damaged) - len(report.moved)
    refused_left = sum(not removed for *_, removed in report.refused_checkpoints)
    print(f"{root}: {report.done} finished trials verified, {report.unfinished} unfinished, "
          f"{len(report.damaged)} damaged" + (f", {len(report.moved)} moved aside" if report.moved else "")
          + (f", {len(report.refused_checkpoints)} checkpoints not data-only" if report.refused_checkpoints else "")
          + (f", {len(report.respelt)} named by a spelt-out default" if report.respelt else ""))
    if left and args.repair:
        print(f"{left} damaged trials are being trained by a live process and were left in place")
    elif left:
        print(f"bench verify --results {args.results} --repair moves them aside; the next bench run redoes them")
    if refused_left and args.repair:
        print(f"{refused_left} refused checkpoints belong to trials a live process holds and were left in place")
    return 1 if left or refused_left else 0


def add_hparams_argument(p) -> None:
    """``--hparams`` of `bench table`."""
    p.add_argument("--hparams", action="store_true",
                   help="instead of the numbers: the recipe and resolved hyperparameters each method's cells "
                        "trained with, as spec.json recorded them (a paper's appendix table), per cell where "
                        "they differ; --format, --methods and --noise apply")


def print_hparams_table(args, options) -> int:
    """`bench table --hparams` (results/hparams_table.py)."""
    from noisybench.results.hparams_table import render_hparams

    if args.compare_paper:
        raise BenchError("--hparams and --compare-paper are two tables; ask for one at a time")
    print(render_hparams(args.results, args.format, options), end="")
    return 0


def add_significance_argument(p) -> None:
    """``--test`` of `bench table` and `bench report`."""
    from noisybench.results.tables import SIGNIFICANCE_TESTS

    p.add_argument("--test", choices=list(SIGNIFICANCE_TESTS), default="welch",
                   help="significance test behind the dagger: welch (default) takes the two cells' seeds as "
                        "independent samples; paired compares the seeds both cells share one by one (a seed "
                        "gives every method the same noisy labels)")


def cmd_claims(args) -> int:
    from noisybench.results.claims import judge_store, load_trials
    from noisybench.results.claims_report import render, write_figures

    root = _results_dir(args.results)
    trials = load_trials(root)
    if not trials:
        raise BenchError(f"no finished trials under {root}; run `bench run --results {root}` first")
    if args.methods:
        wanted = _split(args.methods)
        known = {t.method for t in trials} | {t.base for t in trials}
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise BenchError(f"--methods: {', '.join(unknown)} has no finished trial under {root}; "
                             f"there are: {', '.join(sorted({t.method for t in trials}))}")
        chosen = [t for t in trials if t.method in wanted or t.base in wanted]
    else:
        chosen = trials
    if args.noise:
        import noisybench.noise as noise

        wanted = [noise.parse_noise(text).text for text in _split(args.noise)]
        unknown = [n for n in wanted if n not in {t.noise for t in chosen}]
        if unknown:
            raise BenchError(f"--noise: {', '.join(unknown)} has no finished trial under {root}; "
                             f"there are: {', '.join(sorted({t.noise for t in chosen}))}")
        chosen = [t for t in chosen if t.noise in wanted]
    figures = None
    if args.figures:
        figures = Path(args.figures)
        if not figures.is_dir():
            raise BenchError(f"--figures {args.figures}: not a directory; create it first")
    # Judged among all trials, so that a claim against another method (ELR's against standard)
    # finds that method's trials even when --methods leaves them out of the table.
    chosen_cells = {(t.dataset, t.protocol, t.noise, t.method) for t in chosen}
    judgements = [j for j in judge_store(trials) if (j.dataset, j.protocol, j.noise, j.method) in chosen_cells]
    if not judgements:
        raise BenchError(f"none of the chosen trials under {root} is of a method with claims; methods with claims: "
                         + ", ".join(_methods_with_claims()))
    print(render(judgements, args.format), end="")
    if figures is not None:
        for path in write_figures(judgements, trials, figures, dpi=args.dpi):
            print(f"wrote {path}")
    return 0


def _methods_with_claims() -> list[str]:
    from noisybench.methods import method_names
    from noisybench.methods.registry import get_method

    return [n for n in method_names() if get_method(n).claims]


def register_commands(subparsers) -> None:
    plot = subparsers.add_parser("plot", help="figures: learning curves, t-SNE of saved features")
    figures = plot.add_subparsers(dest="figure", metavar="FIGURE", parser_class=type(plot))
    figures.required = True

    p = figures.add_parser("curves", help="a metric against epoch, one panel per noise setting, mean ± std band per method")
    p.add_argument("--results", default="runs")
    p.add_argument("--metric", default="test_acc",
                   help="a per-epoch metric of metrics.jsonl (test_acc, label_precision, val_acc, ...); several "
                        "comma-separated share the panels, e.g. diluted_label_acc,model_pred_acc (LEND paper Fig. 4)")
    p.add_argument("--methods", default=None, help="only these methods (comma-separated)")
    p.add_argument("--noise", default=None, help="only these noise settings (comma-separated)")
    p.add_argument("--out", default=None, help="figure file, .png/.pdf/.svg (default: curves_<metric>.png)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of a .png (300 for print)")
    p.add_argument("--epochs", default=None, metavar="A:B",
                   help="only epochs A..B, a common x-range when one method trains far longer (e.g. 1:100)")
    p.add_argument("--sharey", action="store_true", help="one y-range for every panel (default: each its own)")
    p.add_argument("--x", choices=("auto", "epoch", "progress"), default="auto",
                   help="x-axis: epochs, or each method's training progress (%% of its own epochs) so that methods "
                        "with long budgets (Me-Momentum) do not squeeze the others; auto: progress when one "
                        "method's epochs are over twice another's in a panel")
    p.set_defaults(handler=cmd_plot_curves)

    p = figures.add_parser("tsne", help="t-SNE of a trial's saved features coloured by true, predicted, noisy labels")
    p.add_argument("--trial", required=True, help="a trial directory (saved with bench run --save-features)")
    p.add_argument("--epoch", type=int, required=True, help="the snapshot's epoch")
    p.add_argument("--subsample", type=int, default=2000, help="at most this many points (seeded; default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample and of t-SNE (default 0)")
    p.add_argument("--out", default=None, help="figure file (default: tsne_<trial>_e<E>.png)")
    p.set_defaults(handler=cmd_plot_tsne)

    p = subparsers.add_parser("classes", help="test accuracy per true class beside each class's realised noise")
    p.add_argument("--results", default="runs")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: all)")
    p.add_argument("--noise", default=None, help="comma-separated noise settings (default: all)")
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    p.set_defaults(handler=cmd_classes)

    p = subparsers.add_parser("verify", help="check every trial of a results directory (metrics, spec and "
                                             "done.json against each other); --repair moves damaged ones aside")
    p.add_argument("--results", default="runs", help="results directory (default: ./runs)")
    p.add_argument("--repair", action="store_true",
                   help="move each damaged trial to <results>/.damaged/ so that the next bench run trains it again")
    p.set_defaults(handler=cmd_verify)

    p = subparsers.add_parser("claims", help="each method's own paper claim (its mechanism) tested on the logged "
                                             "metrics: holds, fails, mixed or untested, per noise setting")
    p.add_argument("--results", default="runs")
    p.add_argument("--methods", default=None, help="only these methods (comma-separated)")
    p.add_argument("--noise", default=None, help="only these noise settings (comma-separated)")
    p.add_argument("--format", choices=["markdown", "latex", "csv"], default="markdown")
    p.add_argument("--figures", default=None, metavar="DIR",
                   help="also draw one figure per claim into DIR (the two quantities over epochs, seeds as bands)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the figures (300 for print)")
    p.set_defaults(handler=cmd_claims)

    p = subparsers.add_parser("report", help="one Markdown page: tables, figures, trial counts, protocols")
    p.add_argument("--results", default="runs")
    p.add_argument("--out", default="report/report.md",
                   help="the page (.md); it and its figures are written into its folder, and nowhere else")
    p.add_argument("--tsne", choices=["first-seed", "all", "none"], default="first-seed",
                   help="t-SNE figures of saved features: the lowest seed per setting (default), all trials, or none")
    p.add_argument("--tsne-subsample", type=int, default=2000, help="points per t-SNE (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the t-SNE subsample and embedding")
    add_significance_argument(p)
    p.set_defaults(handler=cmd_report)
