"""Seeding and vectorised sampling of noisy labels, plus the statistics every trial records.

All randomness of one noise draw comes from ONE ``numpy.random.Generator`` built by
:func:`noise_generator` from (dataset name, canonical spec text, seed) alone: every method
in trial ``seed`` sees the same noisy labels, whatever else differs between the trials,
and no global random state is read or written.
"""
from __future__ import annotations

import hashlib

import numpy as np

# Bumping this string changes every noisy label set; do it only with a changelog entry.
_SEED_DOMAIN = "noisybench.noise.v1"


def noise_generator(dataset_name: str, spec_text: str, seed: int) -> np.random.Generator:
    """The generator for one (dataset, spec, seed): PCG64 seeded by a SHA-256 of the three.

    Hashing (rather than ``default_rng(seed)``) keeps the labels of different datasets and
    specs independent: ``sym:0.2`` and ``sym:0.4`` with seed 0 do not share their draws.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    key = "\x00".join([_SEED_DOMAIN, dataset_name, spec_text, str(int(seed))])
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest, "big")))


def sample_from_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one label per row of an (N, C) matrix of class probabilities, by inverse CDF.

    One uniform per row (``rng.random(N)``, in row order) is compared with the row's
    cumulative sums: label ``j`` is drawn when ``cdf[j-1] <= u * total < cdf[j]``, so a class
    of probability 0 is never drawn.  The uniform is scaled by the row total so that
    rounding in the cumulative sum can never push a draw past the last class.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"expected an (N, C) probability matrix, got shape {probabilities.shape}")
    if (probabilities < 0).any():
        raise ValueError("probabilities must be non-negative")
    uniforms = rng.random(len(probabilities))
    return _inverse_cdf(probabilities, uniforms)


def _inverse_cdf(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(probabilities, axis=1)
    targets = uniforms * cdf[:, -1]
    drawn = (cdf <= targets[:, None]).sum(axis=1)
    # u * total < total in exact arithmetic; in floating point it can round up to it.  Then
    # fall back to the last class of positive probability, never to an impossible one.
    num_classes = probabilities.shape[1]
    last_possible = num_classes - 1 - np.argmax(probabilities[:, ::-1] > 0, axis=1)
    return np.minimum(drawn, last_possible).astype(np.int64)


def sample_from_transition(clean_labels: np.ndarray, transition: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy labels drawn independently per sample from row ``transition[clean_label]``.

    The vectorised equivalent of the reference codes' per-sample
    ``multinomial(1, T[y])`` loop (Patrini et al. 2017; Han et al. 2018), with one uniform per
    sample in training order.  Rows are gathered per sample, so memory is N x C floats.
    """
    clean_labels = np.asarray(clean_labels)
    transition = np.asarray(transition, dtype=np.float64)
    num_classes = transition.shape[0]
    if transition.shape != (num_classes, num_classes):
        raise ValueError(f"transition matrix must be square, got shape {transition.shape}")
    if not np.allclose(transition.sum(axis=1), 1.0):
        raise ValueError("transition matrix rows must sum to 1")
    if len(clean_labels) and (clean_labels.min() < 0 or clean_labels.max() >= num_classes):
        raise ValueError(f"clean labels must lie in [0, {num_classes})")
    return sample_from_rows(transition[clean_labels], rng)


def empirical_transition(clean_labels: np.ndarray, noisy_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C int64 counts: rows are the clean class, columns the noisy label."""
    clean_labels = np.asarray(clean_labels, dtype=np.int64)
    noisy_labels = np.asarray(noisy_labels, dtype=np.int64)
    if clean_labels.shape != noisy_labels.shape:
        raise ValueError(f"label arrays differ in shape: {clean_labels.shape} vs {noisy_labels.shape}")
    flat = np.bincount(clean_labels * num_classes + noisy_labels, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def realised_rate(clean_labels: np.ndarray, noisy_labels: np.ndarray) -> float:
    """The fraction of labels that differ from the clean ones (0.0 for an empty set)."""
    clean_labels = np.asarray(clean_labels)
    noisy_labels = np.asarray(noisy_labels)
    if clean_labels.shape != noisy_labels.shape:
        raise ValueError(f"label arrays differ in shape: {clean_labels.shape} vs {noisy_labels.shape}")
    return float(np.mean(clean_labels != noisy_labels)) if len(clean_labels) else 0.0
