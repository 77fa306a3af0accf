"""Dispatch: check a spec against a dataset, and apply it for one trial seed.

    spec = parse_noise("sym:0.4")
    check_noise_for_dataset(spec, dataset)          # before any trial: BenchError if it cannot work
    noisy = apply_noise(spec, dataset, seed=0)      # NoisyLabels: labels + what the record needs
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisybench.core.errors import BenchError
from noisybench.noise._dataset import training_size
from noisybench.noise.registry import get_kind
from noisybench.noise.sampling import empirical_transition, noise_generator, realised_rate
from noisybench.noise.spec import NoiseSpec, parse_noise

if TYPE_CHECKING:
    from noisybench.datasets.registry import Dataset


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """The training labels of one trial and the statistics its record keeps.

    ``labels``: int64 (N,), in the dataset's training order.
    ``transition``: the designed C x C matrix (float64, rows sum to 1), or ``None`` for noise
    without one (``inst``, ``real``, CIFAR-N, ``file``).
    ``empirical``: C x C int64 counts, rows = clean class, columns = noisy label; ``None``
    when the dataset has no clean training labels.
    ``realised_rate``: fraction of labels that differ from the clean ones, or ``None``.
    ``nominal_rate``: the rate a method may assume (R for sym/pair/asym/inst, the published
    rate for CIFAR-N, the dataset's published rate for ``real``, 0 for clean, ``None`` for
    ``file``).
    """

    spec: NoiseSpec
    dataset_name: str
    seed: int
    num_classes: int
    labels: np.ndarray
    transition: np.ndarray | None
    empirical: np.ndarray | None
    realised_rate: float | None
    nominal_rate: float | None

    @property
    def labels_sha256(self) -> str:
        """Fingerprint of the labels: two records with the same one trained on the same labels."""
        return hashlib.sha256(np.ascontiguousarray(self.labels, dtype="<i8").tobytes()).hexdigest()

    def as_json(self) -> dict:
        """A JSON-able dict for the trial record (the labels themselves: see ``save_labels``)."""
        return {
            "noise": self.spec.text,
            "kind": self.spec.kind,
            "dataset": self.dataset_name,
            "seed": self.seed,
            "num_samples": int(len(self.labels)),
            "num_classes": self.num_classes,
            "realised_rate": self.realised_rate,
            "nominal_rate": self.nominal_rate,
            "transition": None if self.transition is None else self.transition.tolist(),
            "empirical": None if self.empirical is None else self.empirical.tolist(),
            "labels_sha256": self.labels_sha256,
        }


def nominal_rate(spec: NoiseSpec, dataset: "Dataset") -> float | None:
    """The rate a method may assume under ``spec`` (R for sym/pair/asym/inst, the published rate
    of a human label set, a dataset's own estimate; None for a label file), known before sampling."""
    return get_kind(spec.kind).nominal_rate(spec, dataset)


def _data_root(data_root: str | os.PathLike | None) -> Path:
    from noisybench.datasets.registry import resolve_data_root  # the same rule the dataset loaders use

    return resolve_data_root(data_root)


def check_noise_for_dataset(
    spec: str | NoiseSpec, dataset: "Dataset", data_root: str | os.PathLike | None = None
) -> NoiseSpec:
    """Raise a one-line :class:`BenchError` if ``dataset`` cannot take ``spec``; return the parsed spec.

    Refuses: synthetic noise on a dataset without clean labels; ``asym`` without a flip map;
    CIFAR-N labels on another dataset, with missing files or in another image order;
    ``real`` on a dataset without its own noisy labels; an unusable ``file``.
    ``data_root`` is resolved as the dataset loaders do (argument, $NOISYBENCH_DATA, ./data).
    """
    spec = parse_noise(spec)
    kind = get_kind(spec.kind)
    assert kind is not None, f"parse_noise returned unregistered kind {spec.kind!r}"
    if kind.needs_clean_labels and dataset.train_labels is None:
        raise BenchError(
            f"dataset {dataset.name} has no clean training labels for {spec.text} to corrupt; "
            f"use --noise real (its own noisy labels)"
        )
    if kind.check is not None:
        kind.check(spec, dataset, _data_root(data_root))
    return spec


def apply_noise(
    spec: str | NoiseSpec, dataset: "Dataset", seed: int, data_root: str | os.PathLike | None = None
) -> NoisyLabels:
    """The noisy training labels of trial ``seed``: a function of (dataset name, spec, seed) only.

    Randomness comes from one generator seeded by those three (see
    :func:`noise.sampling.noise_generator`), so every method of a trial sees the same labels.
    """
    spec = check_noise_for_dataset(spec, dataset, data_root)
    kind = get_kind(spec.kind)
    assert kind is not None
    rng = noise_generator(dataset.name, spec.text, seed)
    sampled = kind.sample(spec, dataset, rng, _data_root(data_root))

    labels = np.ascontiguousarray(sampled.labels, dtype=np.int64)
    expected_shape = (training_size(dataset),)
    if labels.shape != expected_shape:
        raise AssertionError(f"noise kind {spec.kind} returned labels of shape {labels.shape}, not {expected_shape}")
    clean = dataset.train_labels
    empirical = rate = None
    if clean is not None:
        empirical = empirical_transition(clean, labels, dataset.num_classes)
        rate = realised_rate(clean, labels)
    return NoisyLabels(
        spec=spec,
        dataset_name=dataset.name,
        seed=int(seed),
        num_classes=dataset.num_classes,
        labels=labels,
        transition=sampled.transition,
        empirical=empirical,
        realised_rate=rate,
        nominal_rate=nominal_rate(spec, dataset),
    )
