"""The noise-kind registry: one entry per spec prefix (``sym``, ``pair``, ``cifar10n`` ...).

A kind declares the shape of its argument (none, a rate, a named variant, a path), which
the parser in :mod:`noise.spec` enforces, and a sampler that turns (spec, dataset,
generator) into labels.  Adding a kind is one decorated function::

    @register_kind("mykind", takes=TAKES_RATE, syntax="mykind:R", description="...")
    def sample_mykind(spec, dataset, rng, data_root) -> Sampled: ...

The sampler's module must be imported by ``noise/__init__.py`` so that the decorator runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # only for annotations: keeps `import noise` free of import cycles
    from noisybench.datasets.registry import Dataset
    from noisybench.noise.spec import NoiseSpec

# What follows the colon in a spec.
TAKES_NOTHING = "nothing"  # `clean`, `real`
TAKES_RATE = "rate"  # `sym:0.4`: a float in [0, 1)
TAKES_VARIANT = "variant"  # `cifar10n:worse`: one of a fixed set of names
TAKES_PATH = "path"  # `file:labels.npy`: kept verbatim (paths are case-sensitive)
_ARGUMENT_SHAPES = (TAKES_NOTHING, TAKES_RATE, TAKES_VARIANT, TAKES_PATH)


@dataclass(frozen=True)
class Sampled:
    """What a sampler returns; :func:`noise.apply.apply_noise` adds the statistics.

    ``transition`` is the designed C x C matrix the labels were drawn from, or ``None``
    when the noise has no single matrix (instance-dependent, human, loaded from a file).
    (The rate a method may assume is the kind's ``nominal_rate``, known before sampling.)
    """

    labels: np.ndarray
    transition: np.ndarray | None


Sampler = Callable[["NoiseSpec", "Dataset", np.random.Generator, "Path | None"], Sampled]
Checker = Callable[["NoiseSpec", "Dataset", "Path | None"], None]
NominalRate = Callable[["NoiseSpec", "Dataset"], "float | None"]


def spec_rate(spec: "NoiseSpec", dataset: "Dataset") -> float | None:
    """The nominal rate of a rate kind: its R."""
    return None if spec.rate is None else float(spec.rate)


@dataclass(frozen=True)
class NoiseKind:
    """One registered kind: its syntax, its argument shape and its implementation.

    ``needs_clean_labels``: the kind corrupts the dataset's clean labels, so a dataset
    that only has noisy labels (Animal-10N, Clothing1M) cannot take it.
    ``check`` runs the kind's own dataset checks (an asym map exists, label files are
    present); it is called before any trial starts, so that bad input stops the sweep
    before anything is written.
    """

    name: str
    takes: str
    syntax: str
    description: str
    sample: Sampler
    variants: tuple[str, ...] = ()
    needs_clean_labels: bool = True
    check: Checker | None = None
    nominal_rate: NominalRate = spec_rate


_KINDS: dict[str, NoiseKind] = {}


def register_kind(
    name: str,
    *,
    takes: str,
    syntax: str,
    description: str,
    variants: tuple[str, ...] = (),
    needs_clean_labels: bool = True,
    check: Checker | None = None,
    nominal_rate: NominalRate | None = None,
):
    """Decorator: register ``sample(spec, dataset, rng, data_root) -> Sampled`` as kind ``name``."""
    if takes not in _ARGUMENT_SHAPES:
        raise ValueError(f"noise kind {name!r}: takes={takes!r} is not one of {_ARGUMENT_SHAPES}")
    if (takes == TAKES_VARIANT) != bool(variants):
        raise ValueError(f"noise kind {name!r}: variants are given exactly when takes={TAKES_VARIANT!r}")
    if nominal_rate is None and takes != TAKES_RATE:
        raise ValueError(f"noise kind {name!r}: say its nominal_rate (None where no rate is known)")

    def decorate(sample: Sampler) -> Sampler:
        if name in _KINDS:
            raise ValueError(f"noise kind {name!r} is registered twice")
        _KINDS[name] = NoiseKind(
            name=name,
            takes=takes,
            syntax=syntax,
            description=description,
            sample=sample,
            variants=tuple(variants),
            needs_clean_labels=needs_clean_labels,
            check=check,
            nominal_rate=nominal_rate or spec_rate,
        )
        return sample

    return decorate


def get_kind(name: str) -> NoiseKind | None:
    """The registered kind called ``name``, or ``None``."""
    return _KINDS.get(name)


def kind_names() -> list[str]:
    """Registered kind names, in registration order (the order `bench list` shows)."""
    return list(_KINDS)


def noise_kinds() -> dict[str, str]:
    """Kind name -> one line for `bench list`: what it does, led by its syntax where it takes an argument."""
    return {
        name: kind.description if kind.syntax == name else f"{kind.syntax}  {kind.description}"
        for name, kind in _KINDS.items()
    }
