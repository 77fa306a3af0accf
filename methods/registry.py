"""Method registry: ``@register("name")`` on a Method subclass (timm-style decorator)."""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

from noisybench.core import plugins, rules
from noisybench.core.errors import BenchError

_METHODS: dict[str, type] = {}
PLUGIN_GROUP = "noisybench.methods"  # other packages' methods (core/plugins.py)


def register(name: str):
    def decorate(cls):
        taken_by = _METHODS[name].__module__ if name in _METHODS else None
        plugins.claim(PLUGIN_GROUP, name, cls.__module__, taken_by)  # a clash raises, naming both
        if not dataclasses.is_dataclass(getattr(cls, "Hparams", None)):
            raise TypeError(f"method {name!r} needs a dataclass `Hparams`")
        if "rule_version" in vars(cls) or "rule_history" in vars(cls):  # optional for a plugin (reads as 1)
            rules.check_declaration("method", name, getattr(cls, "rule_version", None),
                                    getattr(cls, "rule_history", None))
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import the installed plugins' methods once (every question to the registry asks this first)."""
    plugins.load(PLUGIN_GROUP, forget=lambda name: _METHODS.pop(name, None))


def method_names() -> list[str]:
    _discover()
    return sorted(_METHODS)


def get_method(name: str) -> type:
    _discover()
    if name not in _METHODS:
        raise BenchError(f"unknown method {name!r}; choose from: {', '.join(method_names())}"
                         + plugins.missing_hint(PLUGIN_GROUP, name))
    return _METHODS[name]


def describe_methods() -> dict[str, str]:
    """name -> the first line of its docstring, and `[plugin PACKAGE VERSION]` for a plugin's."""
    return {n: (get_method(n).__doc__ or "").strip().splitlines()[0] + plugins.marker(PLUGIN_GROUP, n)
            for n in method_names()}


def trial_plugins(method: str, dataset: str | None = None, model: str | None = None) -> str | None:
    """``package==version`` of every plugin a trial of (method, dataset, model) uses, comma-joined;
    None for built-ins only.  A TrialSpec holds it (its ``plugin`` field), so the trial's hash, and
    directory, change with the plugin's version."""
    from noisybench.datasets.registry import DATASET_PLUGIN_GROUP, check_dataset_name
    from noisybench.methods.networks.registry import MODEL_PLUGIN_GROUP, check_model_name

    get_method(method)
    found = [plugins.origin(PLUGIN_GROUP, method)]
    if dataset is not None:
        check_dataset_name(dataset)
        found.append(plugins.origin(DATASET_PLUGIN_GROUP, dataset))
    if model is not None:
        check_model_name(model)
        found.append(plugins.origin(MODEL_PLUGIN_GROUP, model))
    return plugins.requirements(found)


def check_trial_plugins(recorded: str | None, method: str, dataset: str | None, model: str | None) -> None:
    """Refuse to train a trial whose spec names other plugin versions than this process has (a
    worker whose environment differs from the one that made the sweep).  A spec without the field
    (one built by hand, as the generic method tests build theirs) trains with what is installed."""
    installed = trial_plugins(method, dataset, model)
    if recorded is not None and installed != recorded:
        raise BenchError(f"this trial was made with {recorded or 'no plugin'} but this process has "
                         f"{installed or 'none'} installed; install the same versions where trials run, "
                         f"or rerun `bench run` here to make trials for {installed or 'the built-ins'}")


def describe_hparams(name: str) -> list[tuple[str, str, str, str]]:
    """(name, type, default, source) of each hyperparameter of method ``name``: the source is the
    comment the dataclass gives its default (inline, else the comment lines just above it)."""
    import inspect

    cls = get_method(name).Hparams
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        lines = []
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        field_name = stripped.split(":", 1)[0].strip()
        if ":" in stripped and field_name.isidentifier() and not stripped.startswith(("def ", "class ", "@")):
            inline = line.split("#", 1)[1].strip() if "#" in line else ""
            comments[field_name] = inline or " ".join(above)
        above = []
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, str(f.type).replace("typing.", ""), repr(default), comments.get(f.name, "")))
    return out


def _convert(text: str, annotation: Any, where: str) -> Any:
    """Turn the text of an --hp value into the dataclass field's type."""
    if isinstance(annotation, str):  # `from __future__ import annotations`
        annotation = annotation.replace(" ", "")
        optional = "None" in annotation.split("|") or annotation.startswith("Optional[")
        base = annotation.split("|")[0].removeprefix("Optional[").rstrip("]")
    else:
        args = typing.get_args(annotation)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), annotation).__name__ if args else annotation.__name__
    if optional and text.lower() in ("none", "null"):
        return None
    try:
        if base == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if base == "int":
            return int(text)
        if base == "float":
            value = float(text)
            # nan slips through every `lo <= x` check in validate(), and inf overflows the step.
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        return text
    except ValueError:
        kind = {"float": "a finite float", "int": "an integer", "bool": "true or false"}.get(base, f"a {base}")
        raise BenchError(f"--hp {where}={text}: expected {kind}{' or none' if optional else ''}") from None


def build_hparams(name: str, overrides: dict[str, str] | None = None):
    """The method's Hparams with its defaults, overridden by --hp text values."""
    cls = get_method(name).Hparams
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, text in (overrides or {}).items():
        if key not in fields:
            raise BenchError(
                f"--hp {name}.{key}: {name} has no hyperparameter {key!r}; it has: {', '.join(fields) or 'none'}"
            )
        values[key] = _convert(str(text), fields[key].type, f"{name}.{key}")
    hp = cls(**values)
    validate = getattr(hp, "validate", None)
    if validate is not None:
        validate()
    return hp


def canonical_text(value: Any) -> str:
    """One spelling per value, so that equal hyperparameters hash equal: 0.70 and 0.7 -> "0.7",
    yes/on/1 -> "true", 1e-3 -> "0.001", None -> "none"."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def canonical_overrides(hparams, defaults=None) -> tuple[tuple[str, str], ...]:
    """The (name, canonical text) of every field of ``hparams`` that differs from its default, sorted:
    what a trial's spec holds and hashes.  A value given but equal to the default is dropped, so
    ``gce`` and ``gce[q=0.7]`` are one trial.  ``defaults``: the dataclass's own when None."""
    base = defaults if defaults is not None else type(hparams)()
    return tuple(sorted(
        (f.name, canonical_text(getattr(hparams, f.name)))
        for f in dataclasses.fields(hparams) if getattr(hparams, f.name) != getattr(base, f.name)
    ))


def resolve_hparams(name: str, given: dict[str, str], protocol_defaults: dict[str, str], facts):
    """The Resolution a trial trains with: the protocol's defaults for the method
    (Recipe.method_hparams), the --hp values given (which win), then what the method fills in for
    this trial (Method.resolve: every field left None, each with its source).  The one definition
    the sweep's resolution step and the check of stored trials share."""
    return get_method(name).resolve(build_hparams(name, {**protocol_defaults, **given}), facts)


def canonical_given(name: str, given: dict[str, str], protocol_defaults: dict[str, str], facts
                    ) -> tuple[tuple[str, str], ...]:
    """The --hp values that name a trial (its spec holds and hashes them), in their one canonical
    spelling, without those the resolution gives anyway: a given value is dropped when resolving
    without it gives the same hyperparameters, so ``coteaching[forget_rate=0.4]`` at sym:0.4 is
    ``coteaching`` and ``elr[beta=0.7]`` on pair noise is ``elr`` -- every spelling of one resolved
    configuration is one trial.  What stays differs from the resolution's defaults, so the trial ids
    of every store written before (when the spec held the given values apart from the defaults
    filled then) are kept."""
    wanted = resolve_hparams(name, given, protocol_defaults, facts).hparams
    kept = dict(given)
    for key in sorted(given):
        trial = {k: v for k, v in kept.items() if k != key}
        try:
            if resolve_hparams(name, trial, protocol_defaults, facts).hparams == wanted:
                kept = trial
        except BenchError:  # the value is needed (a forget rate for noise of unknown rate): it stays
            pass
    return tuple(sorted((k, canonical_text(getattr(wanted, k))) for k in kept))


def build_method(name: str, overrides: dict[str, str] | None, ctx):
    return get_method(name)(build_hparams(name, overrides), ctx)
