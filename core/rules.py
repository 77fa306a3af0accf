"""Rule versions: which version of a method's, network's or dataset loader's code made a trial.

A trial's directory is named by the hash of its spec, and the spec names a method, a network and
a dataset by name only: when the code behind a name changes what it computes (a fixed loss step,
another layer, a loader that now reads other images), the old trial keeps its name and would be
skipped as done and averaged with new ones.  So each built-in part declares beside its code

    rule_version = 2
    rule_history = {1: "as published in ...", 2: "the divergence of both networks, as the code does"}

an integer starting at 1 and one line per version saying what that version changed.  A change
that alters what a part computes bumps it; a refactor that leaves every number equal does not.
spec.json records the versions of a trial's parts (``rule_versions``), and the stored trials whose
versions differ from the code's are stale (bench/staleness.py).  A plugin that declares none
reads as version 1 (its package version is in the spec's hash already), and so does every record
written before versions were recorded.

Here: the declaration's check, the keys ("method:jocor"), reading a record and saying a
difference.  Standard library only: this is the lowest floor.
"""
from __future__ import annotations

# What an undeclared part (a plugin's) and a record without ``rule_versions`` read as.
DEFAULT_RULE_VERSION = 1
# The parts of a trial, in the order a difference is reported.
PARTS = ("method", "model", "dataset")


def part_key(part: str, name: str) -> str:
    """``("method", "jocor")`` -> ``"method:jocor"``: a key of a trial's ``rule_versions``."""
    return f"{part}:{name}"


def check_declaration(part: str, name: str, version, history) -> None:
    """TypeError unless ``version`` is an int >= 1 and ``history`` maps each of 1..version to one
    non-empty line (the form the registries accept and tests/test_rule_versions.py checks)."""
    where = f"{part} {name!r}"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TypeError(f"{where}: rule_version must be an int >= 1, not {version!r}")
    if not isinstance(history, dict) or set(history) != set(range(1, version + 1)):
        keys = list(history) if isinstance(history, dict) else history
        raise TypeError(f"{where}: rule_history must hold one line for each version 1..{version}, has {keys!r}")
    for number, line in history.items():
        if not isinstance(line, str) or not line.strip() or "\n" in line:
            raise TypeError(f"{where}: rule_history[{number}] must be one non-empty line")


def versions_of(method: str, model: str | None, dataset: str, version_of) -> dict[str, int]:
    """{"method:M": v, "model:N": v, "dataset:D": v} with ``version_of(part, name)`` giving each
    (the model left out when there is none, as in a record that failed before its recipe)."""
    names = {"method": method, "model": model, "dataset": dataset}
    return {part_key(part, names[part]): int(version_of(part, names[part])) for part in PARTS
            if names[part] is not None}


def recorded_rule_versions(record: dict) -> dict[str, int]:
    """The rule versions a spec.json records; a record written before they were recorded reads as
    version 1 of each part it names (its method, its recipe's model, its dataset)."""
    recorded = record.get("rule_versions")
    if isinstance(recorded, dict):
        return {str(k): int(v) for k, v in recorded.items()}
    spec = record.get("spec") or {}
    model = (record.get("recipe") or {}).get("model") or spec.get("model")
    return versions_of(spec.get("method"), model, spec.get("dataset"), lambda part, name: DEFAULT_RULE_VERSION)


def versions_text(versions: dict[str, int]) -> str:
    """``method:standard=1 model:mlp=1 dataset:digits=1``: one cell's versions in one CSV field, the
    parts in one order (spec.json stores its keys sorted), so that equal versions read as equal text."""
    def rank(key: str):
        part = key.partition(":")[0]
        return (PARTS.index(part) if part in PARTS else len(PARTS), key)

    return " ".join(f"{key}={versions[key]}" for key in sorted(versions, key=rank))


def describe_part(key: str) -> str:
    """``"method:jocor"`` -> ``"method jocor"``, as messages name a part."""
    part, _, name = key.partition(":")
    return f"{part} {name}"


def parse_versions_text(text: str) -> dict[str, int]:
    """The inverse of :func:`versions_text`."""
    return {key: int(value) for key, _, value in (item.rpartition("=") for item in text.split())}


def first_difference(first: dict[str, int], second: dict[str, int]) -> tuple[str, int, int] | None:
    """(part key, its version in ``first``, in ``second``) of the first part whose versions differ,
    a part missing from one reading as version 1 there; None when none differs."""
    for key in dict.fromkeys([*second, *first]):
        a, b = first.get(key, DEFAULT_RULE_VERSION), second.get(key, DEFAULT_RULE_VERSION)
        if a != b:
            return key, a, b
    return None


def rule_difference(stored: dict[str, int], current: dict[str, int]) -> str | None:
    """The first part whose version differs, as "method standard: stored version 1, code version 2";
    None when every part of ``current`` has its version in ``stored`` (a part missing there reads
    as version 1)."""
    found = first_difference(stored, current)  # current's parts come first: a part only stored is not used now
    if found is None or found[0] not in current:
        return None
    key, old, new = found
    return f"{describe_part(key)}: stored version {old}, code version {new}"
