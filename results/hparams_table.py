"""`bench table --hparams`: the appendix table of a paper -- for every method of the table, the
recipe and the resolved hyperparameters its cells trained with, read from each trial's spec.json
(``recipe`` and ``hparams``, every default filled), never from today's code.

One table per (dataset, protocol), one row per (method, setting).  Recipe fields every method of
the table shares come first, once, as "every method"; a value the cells of one method do not share (a
noise-dependent default, a recipe per method) is given per cell, ``sym:0.4: 0.4; pair:0.45: 0.45``.
The CSV is one row per (cell, setting), nothing merged: a stable contract for scripts.
"""
from __future__ import annotations

import json

import pandas as pd

from noisybench.results.aggregate import load_trials
from noisybench.results.labels import METHOD_NAME
from noisybench.results.store import DamagedTrial, TrialDir
from noisybench.results.tables import (
    TableOptions,
    _latex_escape,
    _latex_label,
    _method_order,
    method_sort_key,
    noise_sort_key,
    select,
)

RECIPE = "recipe."  # prefix of a recipe field's setting name; hyperparameters have none
NOT_RECORDED = "not recorded"
EVERY_METHOD = "every method"  # the row label of the recipe fields all methods of a table share
CSV_COLUMNS = ["dataset", "protocol", "method", "noise", "setting", "value"]


def value_text(value) -> str:
    """One spelling per value: none, true/false, 0.0005, [80, 120]."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return repr(value) if isinstance(value, float) else str(value)


def _settings(path: str) -> dict[str, str]:
    """setting -> value text of one trial: ``recipe.lr`` ..., then the method's hyperparameters."""
    try:
        record = TrialDir(path).read_spec()
    except DamagedTrial:  # load_trials verified it a moment ago; a file replaced since says so
        return {f"{RECIPE}*": NOT_RECORDED}
    recipe, hparams = record.get("recipe"), record.get("hparams")
    out = {f"{RECIPE}{k}": value_text(v) for k, v in sorted((recipe or {}).items())} or {f"{RECIPE}*": NOT_RECORDED}
    out.update({k: value_text(v) for k, v in (hparams or {}).items()})
    return out


def cell_settings(root, options: TableOptions | None = None) -> pd.DataFrame:
    """One row per (dataset, protocol, method, noise, setting) of the finished trials a table of
    ``root`` counts, its value text: the seeds' common value, or each seed's joined by " / "."""
    trials = load_trials(root)
    if trials.empty:
        return pd.DataFrame(columns=CSV_COLUMNS)
    cells = select(trials, options or TableOptions()).groupby(["dataset", "protocol", "method", "noise"])
    rows = []
    def method_name(key) -> str:  # the row's registry name, from the data beside its label (results/labels.py)
        group = cells.get_group(key)
        return group[METHOD_NAME].iloc[0] if METHOD_NAME in group else key[2]

    for key in sorted(cells.groups, key=lambda k: (k[0], k[1], method_sort_key(k[2], method_name(k)),
                                                   noise_sort_key(k[3]))):
        per_seed = [_settings(path) for path in cells.get_group(key).sort_values("seed")["path"]]
        for setting in dict.fromkeys(name for seed in per_seed for name in seed):
            values = dict.fromkeys(seed.get(setting, NOT_RECORDED) for seed in per_seed)
            rows.append((*key, setting, " / ".join(values)))
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _block_rows(block: pd.DataFrame, options: TableOptions) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The recipe fields every cell of the block shares, and the (method, setting, value) rows."""
    shared = {}
    for setting, group in block[block["setting"].str.startswith(RECIPE)].groupby("setting", sort=False):
        if group["value"].nunique() == 1 and len(group) == block.groupby(["method", "noise"]).ngroups:
            shared[setting] = group["value"].iloc[0]
    rows = []
    for method in _method_order(block, options):
        own = block[(block["method"] == method) & ~block["setting"].isin(shared)]
        if own.empty:
            rows.append((method, "–", "–"))
        for setting, group in own.groupby("setting", sort=False):
            if group["value"].nunique() == 1:
                value = group["value"].iloc[0]
            else:  # per cell, in the table's column order
                ordered = sorted(zip(group["noise"], group["value"]), key=lambda nv: noise_sort_key(nv[0]))
                value = "; ".join(f"{noise}: {v}" for noise, v in ordered)
            rows.append((method, setting, value))
    return shared, rows


def _blocks(settings: pd.DataFrame, options: TableOptions):
    """(dataset, protocol, rows) of each table: the shared recipe first, under EVERY_METHOD."""
    for (dataset, protocol), block in settings.groupby(["dataset", "protocol"], sort=True):
        shared, rows = _block_rows(block, options)
        yield dataset, protocol, [(EVERY_METHOD, setting, value) for setting, value in shared.items()] + rows


def _shown(setting: str) -> str:
    return setting.replace(RECIPE, "recipe: ", 1)


def _caption(dataset: str, protocol: str) -> str:
    return (f"Recipe and resolved hyperparameters on {dataset}, protocol {protocol}, as each cell's trials "
            f"recorded them (spec.json): '{EVERY_METHOD}' holds the recipe fields all methods here share; a "
            f"value that differs between a method's cells is given per cell.")


def to_markdown(settings: pd.DataFrame, options: TableOptions) -> str:
    from tabulate import tabulate

    out = []
    for dataset, protocol, rows in _blocks(settings, options):
        out.append(_caption(dataset, protocol) + "\n")
        shown = [(m, _shown(s), v.replace("|", "\\|")) for m, s, v in rows]
        out.append(tabulate(shown, headers=["Method", "Setting", "Value"], tablefmt="github", disable_numparse=True))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def to_latex(settings: pd.DataFrame, options: TableOptions) -> str:
    out = ["% noisybench hyperparameter table; needs \\usepackage{booktabs}\n"]
    for dataset, protocol, rows in _blocks(settings, options):
        out.append("\\begin{table}[t]\n\\centering")
        out.append(f"\\caption{{{_latex_escape(_caption(dataset, protocol))}}}")
        out.append("\\begin{tabular}{lll}\n\\toprule\nMethod & Setting & Value \\\\\n\\midrule")
        previous = None
        for method, setting, value in rows:
            if previous is not None and method != previous:
                out.append("\\midrule")
            name = _latex_escape(method) if method != previous else ""
            out.append(f"{name} & {_latex_escape(_shown(setting))} & {_latex_escape(value)} \\\\")
            previous = method
        out.append("\\bottomrule\n\\end{tabular}")
        out.append(f"\\label{{{_latex_label('hparams', dataset, protocol)}}}\n\\end{{table}}\n")
    return "\n".join(out)


def to_csv(settings: pd.DataFrame, options: TableOptions) -> str:
    return settings[CSV_COLUMNS].to_csv(index=False)


FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def render_hparams(root, fmt: str, options: TableOptions | None = None) -> str:
    """The appendix table of the store's finished trials (those ``options`` keep) in ``fmt``."""
    options = options or TableOptions()
    return FORMATS[fmt](cell_settings(root, options), options)
