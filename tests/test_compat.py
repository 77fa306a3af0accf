"""What a user sees must not move under a refactoring: stores written by noisybench 0.1.0 (before
the `noisybench` namespace) keep their directory names and print the same tables, and every
protocol resolves to the recipes it resolved to then.

tests/fixtures/store_v0_1_0 was written by that version with
    bench run --methods standard,coteaching --noise sym:0.4,pair:0.35 --seeds 2 --epochs 12
and its .table.md / .table.csv beside it are what `bench table` printed for it then.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from noisybench.bench.cli import main
from noisybench.bench.trainer.protocols import PROTOCOLS, resolve_recipe
from noisybench.core.spec import TrialSpec
from noisybench.methods import method_names

FIXTURES = Path(__file__).parent / "fixtures"
OLD_STORE = FIXTURES / "store_v0_1_0"
DATASETS = ["digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "animal10n", "food101n", "clothing1m"]


def test_an_old_spec_keeps_its_directory_name():
    trial_dirs = sorted(p for p in OLD_STORE.iterdir() if p.is_dir())
    assert len(trial_dirs) == 8
    for path in trial_dirs:
        record = json.loads((path / "spec.json").read_text())
        spec = TrialSpec.from_json(record["spec"])
        assert spec.hash == record["hash"]
        assert spec.dirname == path.name


@pytest.mark.parametrize("fmt, expected", [("markdown", "store_v0_1_0.table.md"), ("csv", "store_v0_1_0.table.csv")])
def test_an_old_store_prints_the_same_table(capsys, fmt, expected):
    assert main(["table", "--results", str(OLD_STORE), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        # The CSV has since gained a last column, each cell's rule versions (issue 27); a store of 0.1
        # records none, so every part of it reads as version 1.  Every column before it is unchanged.
        rows = [line.rsplit(",", 1) for line in out.splitlines()]
        assert [versions for _, versions in rows] == ["rule_versions"] + [
            f"method:{line.split(',')[3]}=1 model:mlp=1 dataset:digits=1" for line, _ in rows[1:]]
        out = "".join(f"{line}\n" for line, _ in rows)
    assert out == (FIXTURES / expected).read_text()


def resolved_recipes() -> dict:
    """Every (protocol, dataset, method) and two command-line overrides, resolved (or its error)."""
    out = {}
    for protocol in PROTOCOLS:
        for dataset in DATASETS:
            for method in method_names():
                for suffix, overrides in (("", {}), ("|{'epochs': 7}", {"epochs": 7}),
                                          ("|{'model': 'cnn', 'batch_size': 32}", {"model": "cnn", "batch_size": 32})):
                    key = f"{protocol}|{dataset}|{method}{suffix}"
                    try:
                        out[key] = resolve_recipe(protocol, dataset, method, **overrides).to_json()
                    except Exception as err:  # noqa: BLE001 -- the refusal is part of what is pinned
                        out[key] = f"ERR {type(err).__name__}: {err}" if not overrides else f"ERR {err}"
    return json.loads(json.dumps(out))


def test_every_protocol_resolves_to_the_recipes_it_did():
    """Pinned recipes: a change to a protocol or a method's `original` recipe shows here.  After a
    deliberate change, regenerate tests/fixtures/recipes_v0_1_0.json with
    python -c "import json,sys; sys.path.insert(0,'tests'); from test_compat import resolved_recipes; \
print(json.dumps(resolved_recipes(), sort_keys=True))" > tests/fixtures/recipes_v0_1_0.json
    and say in the commit why each recipe changed."""
    pinned = json.loads((FIXTURES / "recipes_v0_1_0.json").read_text())
    now = resolved_recipes()
    new_methods = set(method_names()) - {key.split("|")[2] for key in pinned}
    now = {k: v for k, v in now.items() if k.split("|")[2] not in new_methods}
    changed = sorted(k for k in pinned.keys() | now.keys() if pinned.get(k) != now.get(k))
    assert not changed, f"{len(changed)} recipes differ, e.g. {changed[:3]}"
