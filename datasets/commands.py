"""``bench data check``: which datasets a data root holds, and whether they are intact.

Registered through ``bench.cli.COMMAND_MODULES``.  The checks themselves live in
:mod:`datasets.check` (checksums where published, cheap counts elsewhere; nothing decoded).
"""
from __future__ import annotations

import argparse

from noisybench.datasets.check import DAMAGED, MISSING, OK, check_datasets
from noisybench.datasets.registry import DATA_ROOT_ENV, load, resolve_data_root

# The loaders that honour download=True: torchvision hosts these (the others need the
# authors' permission or a manual download).
DOWNLOADABLE = ("cifar10", "cifar100", "mnist", "fashion-mnist")


def cmd_data_check(args) -> int:
    root = resolve_data_root(args.data_root)
    report = check_datasets(root)
    if args.download:
        missing = [name for name, status, _ in report if status == MISSING and name in DOWNLOADABLE]
        for name in missing:
            print(f"downloading {name} into {root.absolute()} ...", flush=True)
            load(name, root, download=True)  # a failed download is a one-line BenchError
        if missing:
            report = check_datasets(root)
    print(f"data root: {root.absolute()}")
    width = max(len(name) for name, _, _ in report)
    for name, status, detail in report:
        print(f"  {name:<{width}}  {status:<7}  {detail}")
    usable = [name for name, status, _ in report if status == OK]
    print(f"{len(usable)} of {len(report)} datasets ready: {', '.join(usable) or 'none'}")
    # Missing datasets are normal (few users have all seven); a damaged one needs fixing.
    return 1 if any(status == DAMAGED for _, status, _ in report) else 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="datasets under a data root")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(data))
    actions.required = True
    check = actions.add_parser(
        "check", help="list the datasets present and valid under the data root (exit 1 if one is damaged)")
    check.add_argument("--data-root", default=None,
                       help=f"dataset root (default: ${DATA_ROOT_ENV}, else ./data)")
    check.add_argument("--download", action="store_true",
                       help=f"first download the missing ones torchvision hosts ({', '.join(DOWNLOADABLE)}); needs internet")
    check.set_defaults(handler=cmd_data_check)
