"""The labels that name a table's rows and columns, and the data each label is made from.

A row is labelled for a reader: ``coteaching[forget_rate=0.2] (0.1 seeding) {noisybench-bootstrap==0.1.0}``
is the method's registry name, its --hp overrides, and the marks that keep cells apart (trials of
noisybench 0.1's seeding scheme; one plugin version among several).  A protocol column reads
``quick[epochs=3]``: the protocol's name and the command-line changes to its recipe.

No code reads a label back.  A registry name may hold any character (a plugin's entry-point name),
so a label cannot be split into its parts with certainty.  Instead every frame that carries a label
carries, beside it, the data it was made from (LABEL_DATA); whatever needs the method -- the
published reference row, ``--methods``, the row order, the colour of a curve -- reads those columns.
The marks have data columns of their own already: ``seeding`` and ``plugin``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

METHOD_NAME = "method_name"  # the method's registry name
HPARAMS = "hparams"  # its --hp overrides as the label prints them; "" when none
PROTOCOL_NAME = "protocol_name"  # the protocol's name without command-line changes to its recipe
LABEL_DATA = [METHOD_NAME, HPARAMS, PROTOCOL_NAME]

# Rows of trials seeded by noisybench 0.1's scheme, in a store that also holds trials of today's.
OLD_SEEDING_MARK = " (0.1 seeding)"
# The plugin mark of a built-in's trials, beside rows of a plugin's versions under one label.
BUILT_IN = "built-in"
# The baseline every table shows first, as the LEND paper's tables do.
BASELINE = "standard"


def hparams_text(spec: dict) -> str:
    """The --hp overrides as a label prints them, sorted by name: ``forget_rate=0.2,num_gradual=5``."""
    hp = spec.get("hparams") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(hp.items()))


def method_label(spec: dict) -> str:
    """The method's row name: its registry name, plus any --hp overrides."""
    hp = hparams_text(spec)
    return spec["method"] + (f"[{hp}]" if hp else "")


def protocol_label(spec: dict, record: dict | None = None) -> str:
    """The protocol's name, plus command-line changes to its recipe.  Initial weights are named by
    file and, where spec.json recorded it, the first 8 hex digits of their sha256: two files of one
    name are other recipes and never share a cell."""
    changes = [f"{k}={spec[k]}" for k in ("model", "epochs", "batch_size", "precision") if spec.get(k) is not None]
    if spec.get("pretrained"):  # other initial weights are another recipe: never averaged together
        digest = ((record or {}).get("pretrained") or {}).get("sha256")
        changes.append(f"pretrained={Path(spec['pretrained']).name}" + (f"@{digest[:8]}" if digest else ""))
    return spec["protocol"] + (f"[{','.join(changes)}]" if changes else "")


def label_data(spec: dict) -> dict:
    """The LABEL_DATA columns of one trial: what its method and protocol labels are made from."""
    return {METHOD_NAME: spec["method"], HPARAMS: hparams_text(spec), PROTOCOL_NAME: spec["protocol"]}


def plugin_version_mark(plugin: str | None) -> str:
    """`` {noisybench-bootstrap==0.2.0}``: the mark of one plugin version's row (None: the built-in)."""
    return " {" + (plugin or BUILT_IN) + "}"


def with_label_data(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with LABEL_DATA.  A frame built by hand without them (a summary of one's own
    numbers) holds plain rows: each method label is a registry name without overrides, each
    protocol label a protocol's name."""
    plain = {METHOD_NAME: lambda: frame["method"], HPARAMS: lambda: "", PROTOCOL_NAME: lambda: frame["protocol"]}
    missing = {column: plain[column]() for column in LABEL_DATA if column not in frame}
    return frame.assign(**missing) if missing else frame


def method_sort_key(label: str, name: str) -> tuple:
    """Rows in the tables' order: every row of the baseline method first, then by label."""
    return (name != BASELINE, label)


def method_names_by_label(frame: pd.DataFrame) -> dict[str, str]:
    """{row label: registry name} of the frame's rows."""
    frame = with_label_data(frame)
    return dict(zip(frame["method"], frame[METHOD_NAME]))


def sort_methods(labels: Iterable[str], names: Mapping[str, str]) -> list[str]:
    """Row labels in the tables' order, ``names`` mapping each label to its registry name."""
    return sorted(set(labels), key=lambda label: method_sort_key(label, names[label]))


def chosen_methods(frame: pd.DataFrame, wanted: Iterable[str]) -> pd.Series:
    """The rows ``wanted`` chooses: each wanted entry is a row label or a registry name (every row
    of that method: its --hp variants and its marked rows too)."""
    wanted = set(wanted)
    frame = with_label_data(frame)
    return frame["method"].isin(wanted) | frame[METHOD_NAME].isin(wanted)


def method_choices(frame: pd.DataFrame) -> set[str]:
    """What ``--methods`` may name in this frame: its row labels and its registry names."""
    return set(frame["method"]) | set(method_names_by_label(frame).values())
