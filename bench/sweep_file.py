"""Sweeps as data: ``bench run --config sweep.toml`` (read with the standard library's tomllib).

A sweep file holds what the command line would: the dataset, methods, noise settings, seeds,
protocol and recipe changes, hyperparameter grids and launcher options.  Any flag given on the
command line overrides the file's value.  Example:

    dataset = "digits"
    methods = ["standard", "lend"]
    noise = ["sym:0.4", "pair:0.35"]
    seeds = 3                        # or "0-4"
    epochs = 50
    results = "runs/lend-k"

    [hp.lend]
    k = [4, 8, 16]                   # a grid: one row per value
    gamma = 3.0

    [launcher]
    launcher = "local"
    workers = 2
"""
from __future__ import annotations

import sys
from pathlib import Path

from noisybench.core.errors import BenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover -- Python 3.10: the same parser under its PyPI name, if installed
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

# Top-level keys -> the `bench run` option they set (its argparse dest).
LIST_KEYS = {"methods": "methods", "noise": "noise"}
SCALAR_KEYS = {"seeds": "seeds", "dataset": "dataset", "protocol": "protocol", "model": "model", "epochs": "epochs",
               "batch_size": "batch_size", "data_root": "data_root", "results": "results", "device": "device",
               "precision": "precision", "checkpoint_every": "checkpoint_every", "pretrained": "pretrained",
               "test": "test", "trials_per_gpu": "trials_per_gpu"}
LAUNCHER_KEYS = {"launcher", "workers", "partition", "time", "gpus_per_task", "cpus_per_task", "mem",
                 "array_parallelism", "trials_per_job", "slurm_folder", "max_requeues", "wait"}


def _text(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BenchError(f"{where} = {value!r}: expected a string or a number")
    return str(value)


def read_sweep_file(path: str) -> dict:
    """The file's settings as {argparse dest: value}, values spelled as on the command line."""
    if tomllib is None:  # pragma: no cover
        raise BenchError("--config needs Python 3.11 (tomllib) or the tomli package; pip install tomli")
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"--config {path}: no such file; write a sweep file (see `bench run --help`)")
    try:
        data = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BenchError(f"--config {path}: not valid TOML ({' '.join(str(err).split())})") from None
    settings: dict = {}
    known = set(LIST_KEYS) | set(SCALAR_KEYS) | {"hp", "launcher"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BenchError(f"--config {path}: unknown key {unknown[0]!r}; the keys are: {', '.join(sorted(known))}")
    for key, dest in LIST_KEYS.items():
        if key in data:
            values = data[key] if isinstance(data[key], list) else [data[key]]
            settings[dest] = ",".join(_text(v, f"{key}") for v in values)
    for key, dest in SCALAR_KEYS.items():
        if key in data:
            settings[dest] = data[key] if isinstance(data[key], int) and key != "seeds" else _text(data[key], key)
    hp = data.get("hp", {})
    if not isinstance(hp, dict) or not all(isinstance(v, dict) for v in hp.values()):
        raise BenchError(f"--config {path}: [hp] holds one table per method, e.g. [hp.lend] with k = [4, 8]")
    assignments = []
    for method, values in hp.items():
        for name, value in values.items():
            grid = value if isinstance(value, list) else [value]
            if not grid:
                raise BenchError(f"--config {path}: hp.{method}.{name} is an empty list")
            texts = [str(v).lower() if isinstance(v, bool) else _text(v, f"hp.{method}.{name}") for v in grid]
            assignments.append(f"{method}.{name}=" + ",".join(texts))
    if assignments:
        settings["hp"] = assignments
    launcher = data.get("launcher", {})
    if not isinstance(launcher, dict):
        raise BenchError(f"--config {path}: [launcher] is a table, e.g. launcher = \"local\"")
    unknown = sorted(set(launcher) - LAUNCHER_KEYS)
    if unknown:
        raise BenchError(f"--config {path}: unknown launcher key {unknown[0]!r}; the keys are: "
                         f"{', '.join(sorted(LAUNCHER_KEYS))}")
    settings.update(launcher)
    return settings


def given_on_command_line(parser, argv: list[str]) -> set[str]:
    """The dests of the options ``argv`` names (so that they win over the sweep file)."""
    flags = {token.split("=", 1)[0] for token in argv if token.startswith("--")}
    return {action.dest for action in parser._actions if flags & set(action.option_strings)}


def apply_sweep_file(args, parser, argv: list[str]) -> None:
    """Fill ``args`` from ``args.config`` wherever the command line gave no value, each value
    converted and checked as argparse would (its type and choices)."""
    if not getattr(args, "config", None):
        return
    given = given_on_command_line(parser, argv)
    actions = {action.dest: action for action in parser._actions}
    for dest, value in read_sweep_file(args.config).items():
        if dest in given:
            continue
        action = actions[dest]
        if isinstance(value, bool) != (action.nargs == 0):
            raise BenchError(f"--config {args.config}: {dest} = {value!r}: expected "
                             + ("true or false" if action.nargs == 0 else "a value, not true/false"))
        if action.type is not None and not isinstance(value, list):
            try:
                value = action.type(str(value))
            except (TypeError, ValueError):
                raise BenchError(f"--config {args.config}: {dest} = {value!r} is not a valid "
                                 f"{'/'.join(action.option_strings)} value") from None
        if action.choices is not None and value not in action.choices:
            raise BenchError(f"--config {args.config}: {dest} = {value!r}; choose one of: "
                             f"{', '.join(map(str, action.choices))}")
        setattr(args, dest, value)
