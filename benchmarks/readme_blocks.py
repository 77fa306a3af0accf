"""Every measured block of the READMEs: the sweep behind it and how it is shown.

benchmarks/readme_numbers.py trains the sweeps and writes the blocks; a README shows a block
between ``<!-- numbers: NAME -->`` and ``<!-- /numbers -->``.  Blocks with the same sweep (or
overlapping ones) share their trials: one store per dataset.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    name: str
    file: str  # the README it appears in, relative to the repository
    sweep: str = ""  # `bench run` arguments (digits, protocol quick unless they say otherwise)
    show: str = "table"  # table | paired | epochs | classes | timing | stdout
    intro: str = ""  # text before the command line
    note: str = ""  # text after the command line, e.g. " (quick, official defaults)"
    test: str = "welch"  # the table's significance test
    columns: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None  # table rows / epochs columns, in this order
    noises: tuple[str, ...] | None = None
    pairs: tuple[tuple[str, str, str, str], ...] = ()  # paired: (baseline, method, part, noise)
    metrics: tuple[str, ...] = ()  # epochs: the metrics shown
    epochs: tuple[int, ...] = ()  # epochs: the epochs shown
    command: str = ""  # stdout: the bench command whose output is shown
    indent: bool = True  # stdout: as a code block; False where the command prints Markdown, shown as such
    measured: bool = True  # False: nothing is trained (a fabricated store), so no machine is named


METHODS = "methods/README.md"
ALL_BASELINES = "standard,coteaching,gce,jocor,sigua,lend,elr,elr_plus,dividemix"
LEND_10 = "--methods standard,lend,gce,sigua,coteaching,jocor --noise sym:0.4,pair:0.45 --seeds 10"
ALL_METHODS = f"{ALL_BASELINES},me_momentum,self_learning"
FMNIST_GRID = f"--dataset fashion-mnist --methods {ALL_METHODS} --noise sym:0.5,pair:0.45 --seeds 3"
LEND_256 = "--methods standard,lend --noise sym:0.4,pair:0.45 --seeds 10 --batch-size 256"

BLOCKS: list[Block] = [
    Block("demo", "README.md", show="stdout", command="bench run --methods standard --noise sym:0.4 --seeds 3",
          intro="`make demo`: "),
    Block("figure-latex", "results/README.md", "--methods standard,coteaching,lend --noise sym:0.4,pair:0.35 --seeds 3",
          show="stdout", intro="The figure and the LaTeX table below: ",
          command="bench plot curves --results runs --out {repo}/results/figures/curves_digits.png && "
                  "bench table --results runs --format latex --columns last"),
    Block("compare-paper-example", "results/README.md", show="stdout",
          command="python {repo}/tests/test_compare_paper.py {dir}/fake-cifar100 && "
                  "bench table --results {dir}/fake-cifar100 --compare-paper", measured=False),
    Block("methods-main", METHODS, f"--methods {ALL_BASELINES} --noise sym:0.4,pair:0.35 --seeds 3"),
    Block("methods-pair45", METHODS, f"--methods {ALL_BASELINES} --noise pair:0.45 --seeds 3"),
    Block("coteaching-precision", METHODS, "--methods coteaching --noise sym:0.4 --seeds 3", show="epochs",
          intro="Co-teaching's kept samples, mean of 3 seeds: ", methods=("coteaching",), noises=("sym:0.4",),
          metrics=("forget_rate", "label_precision"), epochs=(1, 9, 100)),
    Block("lend-batch-64", METHODS, "--methods standard,lend --noise sym:0.4,pair:0.45 --seeds 3"),
    Block("lend-batch-64-paired", METHODS, "--methods standard,lend --noise sym:0.4,pair:0.45 --seeds 3", show="paired",
          pairs=(("standard", "lend", "last", "sym:0.4"), ("standard", "lend", "last", "pair:0.45"))),
    Block("lend-10-seeds", METHODS, LEND_10),
    Block("lend-10-seeds-paired", METHODS, LEND_10, show="paired",
          pairs=tuple(("standard", m, "last", n) for n in ("pair:0.45", "sym:0.4")
                      for m in ("lend", "gce", "sigua", "coteaching", "jocor"))),
    Block("lend-10-seeds-classes", METHODS, LEND_10, show="classes", methods=("standard", "lend"),
          noises=("pair:0.45",), intro="Per class (`bench classes --noise pair:0.45`), standard and lend: "),
    Block("lend-batch-256", METHODS, LEND_256),
    Block("lend-batch-256-paired", METHODS, LEND_256, show="paired",
          pairs=(("standard", "lend", "last", "sym:0.4"), ("standard", "lend", "last", "pair:0.45"))),
    Block("lend-k3", METHODS, "--methods lend --noise sym:0.4,pair:0.45 --seeds 3 --hp lend.k=3"),
    Block("lend-paper-readings", METHODS, "--methods lend --noise sym:0.4,pair:0.45 --seeds 3 --batch-size 256 "
          "--hp lend.selection=hard,lend.temporal=output,lend.solver=iterate"),
    Block("lend-dilution-256", METHODS, "--methods lend --noise sym:0.4 --seeds 3 --batch-size 256", show="epochs",
          intro="Batch 256, mean of 3 seeds: ", methods=("lend",), noises=("sym:0.4",),
          metrics=("diluted_label_acc", "model_pred_acc"), epochs=(1, 2, 5, 10, 20, 100)),
    Block("lend-dilution-64", METHODS, "--methods lend --noise sym:0.4 --seeds 3", show="epochs",
          intro="Batch 64, mean of 3 seeds: ", methods=("lend",), noises=("sym:0.4",),
          metrics=("diluted_label_acc", "model_pred_acc"), epochs=(1, 2, 5, 10, 20, 100)),
    Block("elr-digits", METHODS, "--methods standard,elr,elr_plus --noise sym:0.4,pair:0.35,pair:0.45 --seeds 3"),
    Block("elr-pair-choice", METHODS, "--methods elr --noise pair:0.35 --seeds 1 --hp elr.beta=0.9,0.7 --hp elr.lam=1,3",
          columns=("last",)),
    Block("elr-targets", METHODS, "--methods elr --noise sym:0.4,pair:0.35,pair:0.45 --seeds 3", show="epochs",
          intro="ELR's targets against the clean labels, mean of 3 seeds: ", methods=("elr",),
          noises=("sym:0.4", "pair:0.35", "pair:0.45"), metrics=("target_acc",), epochs=(1, 10, 50, 100)),
    Block("dividemix-digits", METHODS, "--methods standard,dividemix --noise sym:0.4,pair:0.35 --seeds 3"),
    Block("dividemix-division", METHODS, "--methods dividemix --noise sym:0.4,pair:0.35 --seeds 3", show="epochs",
          intro="Each network's labelled split against the clean labels, mean of 3 seeds: ", methods=("dividemix",),
          noises=("sym:0.4", "pair:0.35"),
          metrics=("net1_label_precision", "net1_label_recall", "net2_label_precision", "net2_label_recall"),
          epochs=(11, 50, 100)),
    Block("phase-methods", METHODS, "--methods standard,me_momentum,self_learning --noise sym:0.4 --seeds 3"),
    Block("fmnist-headline", "README.md", FMNIST_GRID, methods=("standard", "coteaching", "jocor", "dividemix"),
          intro="Real Fashion-MNIST, four rows of the 11-method grid in methods/README.md (bold and † compare "
                "these four rows only): "),
    Block("fmnist-grid", METHODS, FMNIST_GRID),
    Block("fmnist-timing", METHODS, FMNIST_GRID, show="timing",
          intro="What the grid cost, two trials at a time on the 2 cores, while other jobs (test runs, other "
                "trainings) shared them: the seconds are longer than a quiet machine's, where standard's epoch "
                "takes about 1.2 s, and a sweep interrupted once and resumed: "),
    Block("fmnist-figure", METHODS, FMNIST_GRID, show="stdout",
          intro="The learning curves of the same trials: ",
          command="bench plot curves --results runs --out {repo}/results/figures/curves_fashion_mnist.png"),
    Block("fmnist-claims", METHODS, FMNIST_GRID, show="stdout",
          intro="Each method's own claim on the same trials: ", command="bench claims --results runs", indent=False),
    Block("fmnist-claims-figure", METHODS, FMNIST_GRID, show="stdout",
          intro="LEND's dilution claim drawn as its paper's Fig. 4 (the figure below): ",
          command="bench claims --results runs --methods lend --noise sym:0.5,pair:0.45 --format csv "
                  "--figures {repo}/results/figures"),
]
