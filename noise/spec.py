"""Parsing noise specs: ``sym:0.4``, ``pair:0.45``, ``clean``, ``cifar10n:worse``, ``file:x.npy``.

The parser knows only the syntax each registered kind declares (see :mod:`noise.registry`);
whether a dataset can take a spec is :func:`noise.apply.check_noise_for_dataset`'s job.

Every spec gets a canonical text (``SYM:.40`` -> ``sym:0.4``).  The canonical text, not
what the user typed, seeds the noise and names the trial, so that spelling a rate two ways
never gives two different sets of noisy labels.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from noisybench.core.errors import BenchError
from noisybench.noise.registry import (
    TAKES_NOTHING,
    TAKES_PATH,
    TAKES_RATE,
    TAKES_VARIANT,
    NoiseKind,
    get_kind,
    kind_names,
)

LABEL_FILE_SUFFIX = ".npy"


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed noise spec.

    ``rate`` is set for rate kinds (sym, pair, asym, inst), ``arg`` for the others that
    take an argument (the CIFAR-N label set, the label file's path); ``text`` is the
    canonical spelling, which :func:`parse_noise` maps back to an equal spec.
    """

    kind: str
    rate: float | None
    arg: str | None
    text: str

    def __str__(self) -> str:
        return self.text


def _kinds_listing() -> str:
    return ", ".join(get_kind(name).syntax for name in kind_names())  # type: ignore[union-attr]


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_noise(text: str | NoiseSpec) -> NoiseSpec:
    """Parse a noise spec from the command line; raise a one-line :class:`BenchError` if malformed.

    Kind names and CIFAR-N label sets are case-insensitive; a file path is kept verbatim.
    A spec that is already parsed is returned unchanged.
    """
    if isinstance(text, NoiseSpec):
        return text
    if not isinstance(text, str):
        raise TypeError(f"parse_noise expects a str, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise BenchError(f"empty noise spec; give one of: {_kinds_listing()} (e.g. sym:0.4)")

    head, colon, argument = stripped.partition(":")
    name = head.strip().lower()
    kind = get_kind(name)
    if kind is None:
        raise BenchError(
            f"unknown noise kind {head.strip()!r} in {stripped!r}{_did_you_mean(name, kind_names())}; "
            f"choose one of: {_kinds_listing()}"
        )
    given = argument.strip() if colon else None

    if kind.takes == TAKES_NOTHING:
        return _parse_no_argument(kind, given, stripped)
    if kind.takes == TAKES_RATE:
        return _parse_rate(kind, given, stripped)
    if kind.takes == TAKES_VARIANT:
        return _parse_variant(kind, given, stripped)
    if kind.takes == TAKES_PATH:
        return _parse_path(kind, given, stripped)
    raise AssertionError(f"noise kind {kind.name!r} has unhandled argument shape {kind.takes!r}")


def _parse_no_argument(kind: NoiseKind, given: str | None, text: str) -> NoiseSpec:
    if given is not None:
        hint = " (for symmetric noise write sym:R)" if kind.name == "clean" else ""
        raise BenchError(f"{kind.name} takes no rate or argument, got {text!r}; write just {kind.name}{hint}")
    return NoiseSpec(kind=kind.name, rate=None, arg=None, text=kind.name)


def _parse_rate(kind: NoiseKind, given: str | None, text: str) -> NoiseSpec:
    usage = f"write {kind.name}:R with R a fraction in [0, 1), e.g. {kind.name}:0.4 for 40%"
    if not given:
        raise BenchError(f"{text!r} is missing its noise rate; {usage}")
    try:
        rate = float(given)
    except ValueError:
        raise BenchError(f"noise rate {given!r} in {text!r} is not a number; {usage}") from None
    if not math.isfinite(rate) or not 0.0 <= rate < 1.0:
        raise BenchError(f"noise rate {given} in {text!r} is outside [0, 1); {usage}")
    rate += 0.0  # turns -0.0 into 0.0, so that both spell the same canonical text
    return NoiseSpec(kind=kind.name, rate=rate, arg=None, text=f"{kind.name}:{rate!r}")


def _parse_variant(kind: NoiseKind, given: str | None, text: str) -> NoiseSpec:
    choices = ", ".join(f"{kind.name}:{variant}" for variant in kind.variants)
    if not given:
        raise BenchError(f"{text!r} needs a label set; write one of: {choices}")
    variant = given.lower()
    if variant not in kind.variants:
        raise BenchError(
            f"unknown {kind.name} label set {given!r}{_did_you_mean(variant, list(kind.variants))}; "
            f"write one of: {choices}"
        )
    return NoiseSpec(kind=kind.name, rate=None, arg=variant, text=f"{kind.name}:{variant}")


def _parse_path(kind: NoiseKind, given: str | None, text: str) -> NoiseSpec:
    if not given:
        raise BenchError(f"{text!r} needs a path; write {kind.name}:PATH{LABEL_FILE_SUFFIX}")
    if not given.endswith(LABEL_FILE_SUFFIX):
        raise BenchError(
            f"label file {given!r} is not a {LABEL_FILE_SUFFIX} file; save the labels with "
            f"numpy.save as an int64 array and write {kind.name}:PATH{LABEL_FILE_SUFFIX}"
        )
    return NoiseSpec(kind=kind.name, rate=None, arg=given, text=f"{kind.name}:{given}")
