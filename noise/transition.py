"""Designed noise transition matrices (the asymmetric flip maps belong to their datasets).

Convention everywhere: ``T[i, j]`` is the probability that a sample of clean class ``i``
receives the noisy label ``j``; rows sum to 1.  Each function returns a fresh float64
array and validates its inputs with plain ``ValueError`` (these are programming errors:
user input has been checked by the parser and :func:`noise.apply.check_noise_for_dataset`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), got {rate}")


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {num_classes}")


def symmetric_transition(num_classes: int, rate: float) -> np.ndarray:
    """Symmetric noise, transition-matrix convention (Patrini et al. 2017; Co-teaching, Han et al. 2018).

    ``T[i, i] = 1 - rate`` and ``T[i, j] = rate / (C - 1)`` for ``j != i``: the clean class
    is never redrawn, so the expected fraction of wrong labels is exactly ``rate``.
    (DivideMix instead redraws uniformly over all C classes, realising ``rate (C-1)/C``.)
    """
    _check_num_classes(num_classes)
    _check_rate(rate)
    matrix = np.full((num_classes, num_classes), rate / (num_classes - 1), dtype=np.float64)
    np.fill_diagonal(matrix, 1.0 - rate)
    return matrix


def pair_transition(num_classes: int, rate: float) -> np.ndarray:
    """Pair flipping (Han et al., Co-teaching, NeurIPS 2018, ``noisify_pairflip``).

    ``T[i, i] = 1 - rate`` and ``T[i, (i + 1) mod C] = rate``; 0.45 is the classic hard setting.
    """
    _check_num_classes(num_classes)
    _check_rate(rate)
    matrix = np.eye(num_classes, dtype=np.float64) * (1.0 - rate)
    classes = np.arange(num_classes)
    matrix[classes, (classes + 1) % num_classes] = rate
    return matrix


def asymmetric_transition(num_classes: int, rate: float, flip_map: Mapping[int, int]) -> np.ndarray:
    """Class-dependent flips to a similar class (Patrini et al. 2017).

    Each source class ``s`` in ``flip_map`` keeps its label with probability ``1 - rate`` and
    flips to ``flip_map[s]`` with probability ``rate``; classes not in the map stay clean, so
    the overall rate is ``rate`` times the share of samples in source classes (about
    ``rate / 2`` on CIFAR-10).
    """
    _check_num_classes(num_classes)
    _check_rate(rate)
    matrix = np.eye(num_classes, dtype=np.float64)
    for source, target in flip_map.items():
        if not (0 <= source < num_classes and 0 <= target < num_classes):
            raise ValueError(f"asym map entry {source} -> {target} is outside the {num_classes} classes")
        if source == target:
            raise ValueError(f"asym map entry {source} -> {target} maps a class to itself")
        matrix[source, source] = 1.0 - rate
        matrix[source, target] = rate
    return matrix


def identity_transition(num_classes: int) -> np.ndarray:
    """No noise: every label is kept."""
    return np.eye(num_classes, dtype=np.float64)
