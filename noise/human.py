"""Real human label noise: CIFAR-10N / CIFAR-100N files and a dataset's own noisy labels.

CIFAR-N: Wei, Zhu, Cheng, Liu, Niu, Liu, "Learning with Noisy Labels Revisited: A Study
Using Real-World Human Annotations", ICLR 2022; label files from github.com/UCSC-REAL/
cifar-10-100n (``data/``, CC BY-NC 4.0).  Each is a ``torch.save``'d dict of 50,000-entry
int64 arrays in PyTorch's CIFAR training order (the python-pickle batches, in order), with
the dataset's own labels under ``clean_label``.  We check that ``clean_label`` equals the
loaded dataset's training labels and refuse otherwise: a mismatch means the images are in
another order, and every human label would then sit on the wrong image.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisybench.core.errors import BenchError
from noisybench.noise._dataset import training_size

if TYPE_CHECKING:
    from noisybench.datasets.registry import Dataset

CIFAR_N_SOURCE = "github.com/UCSC-REAL/cifar-10-100n (folder data/)"
CIFAR_N_SUBDIR = "cifar-n"
CLEAN_KEY = "clean_label"


@dataclass(frozen=True)
class HumanLabelSet:
    """One published CIFAR-N label set: where it lives and its published noise rate."""

    spec_kind: str  # the noise kind that names it: cifar10n / cifar100n
    variant: str  # cifar10n:<variant>
    dataset_name: str  # the only dataset whose images these labels belong to
    file_name: str
    key: str
    published_rate: float  # Wei et al. 2022, Table 1 (fraction of labels != clean_label)


_CIFAR10N = "CIFAR-10_human.pt"
_CIFAR100N = "CIFAR-100_human.pt"

HUMAN_LABEL_SETS: dict[tuple[str, str], HumanLabelSet] = {
    (entry.spec_kind, entry.variant): entry
    for entry in [
        HumanLabelSet("cifar10n", "aggre", "cifar10", _CIFAR10N, "aggre_label", 0.0901),
        # The paper calls it "Worst"; the file's key (and so our name) is "worse".
        HumanLabelSet("cifar10n", "worse", "cifar10", _CIFAR10N, "worse_label", 0.4021),
        HumanLabelSet("cifar10n", "rand1", "cifar10", _CIFAR10N, "random_label1", 0.1723),
        HumanLabelSet("cifar10n", "rand2", "cifar10", _CIFAR10N, "random_label2", 0.1812),
        HumanLabelSet("cifar10n", "rand3", "cifar10", _CIFAR10N, "random_label3", 0.1764),
        HumanLabelSet("cifar100n", "noisy", "cifar100", _CIFAR100N, "noisy_label", 0.4020),
    ]
}


def variants_of(spec_kind: str) -> tuple[str, ...]:
    """The label-set names of one CIFAR-N kind (cifar10n: aggre, worse, rand1, rand2, rand3)."""
    return tuple(variant for kind, variant in HUMAN_LABEL_SETS if kind == spec_kind)


def candidate_paths(file_name: str, data_root: Path) -> list[Path]:
    """Where a CIFAR-N file is looked for, in order: <root>/cifar-n/, then <root>/."""
    return [data_root / CIFAR_N_SUBDIR / file_name, data_root / file_name]


def find_label_file(file_name: str, data_root: Path) -> Path:
    """The first existing candidate path, or a one-line error naming all of them and the source."""
    candidates = candidate_paths(file_name, data_root)
    for path in candidates:
        if path.is_file():
            return path
    # Absolute paths: a relative data root says nothing once the user is in another directory.
    searched = ", ".join(str(path.absolute()) for path in candidates)
    raise BenchError(
        f"CIFAR-N label file {file_name} not found (looked at {searched}); download data/{file_name} "
        f"from {CIFAR_N_SOURCE} into {(data_root / CIFAR_N_SUBDIR).absolute()}, or pass --data-root"
    )


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, modified_ns: int, size: int) -> dict[str, np.ndarray]:
    # Keyed on mtime and size too, so a replaced file is read again.  Arrays are made
    # read-only because the cache hands the same objects to every caller.
    from noisybench.datasets.dataonly import NotDataOnly, torch_load_data_only  # lazily, as apply.py does

    # The files are torch.save'd dicts of numpy arrays: read with torch's weights-only unpickler and
    # numpy's array reconstruction allowed for this call, so a forged file runs nothing.
    try:
        raw = torch_load_data_only(path, map_location="cpu", numpy_arrays=True)
    except NotDataOnly as refusal:
        raise BenchError(
            f"CIFAR-N label file {path} is not data only: it {refusal}; refused before anything in it ran; "
            f"download it again from {CIFAR_N_SOURCE}"
        ) from None
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise BenchError(
            f"cannot read CIFAR-N label file {path} ({type(error).__name__}: {error}); "
            f"download it again from {CIFAR_N_SOURCE}"
        ) from None
    if not isinstance(raw, dict):
        raise BenchError(
            f"CIFAR-N label file {path} holds a {type(raw).__name__}, not a dict of label arrays; "
            f"download it again from {CIFAR_N_SOURCE}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, values in raw.items():
        if hasattr(values, "numpy"):  # a torch tensor
            values = values.numpy()
        array = np.asarray(values)
        if array.dtype.kind in "iu":
            array = array.astype(np.int64)
            array.setflags(write=False)
            arrays[str(key)] = array
    return arrays


def read_label_file(path: Path) -> dict[str, np.ndarray]:
    """All integer label arrays of a CIFAR-N ``.pt`` file, by key (cached per process)."""
    stat = os.stat(path)
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


def human_labels(label_set: HumanLabelSet, dataset: "Dataset", data_root: Path) -> np.ndarray:
    """The human labels of ``label_set`` for ``dataset``, after every check; a fresh int64 array.

    Refuses (one-line :class:`BenchError`) a dataset the labels do not belong to, a missing
    or foreign file, and a ``clean_label`` that differs from the dataset's training labels.
    """
    spec_text = f"{label_set.spec_kind}:{label_set.variant}"
    if dataset.name != label_set.dataset_name:
        raise BenchError(
            f"{spec_text} labels belong to {label_set.dataset_name}'s training images, not {dataset.name}'s; "
            f"use --dataset {label_set.dataset_name} with --noise {spec_text}"
        )
    path = find_label_file(label_set.file_name, data_root)
    arrays = read_label_file(path)
    for key in (label_set.key, CLEAN_KEY):
        if key not in arrays:
            raise BenchError(
                f"{path} has no integer array {key!r} (found: {', '.join(sorted(arrays)) or 'none'}); "
                f"it is not the {label_set.file_name} of {CIFAR_N_SOURCE}: download it again"
            )
    noisy, clean = arrays[label_set.key], arrays[CLEAN_KEY]
    expected = training_size(dataset)
    if len(noisy) != expected or len(clean) != expected:
        raise BenchError(
            f"{path} has {len(noisy):,} labels under {label_set.key!r} but {dataset.name} has {expected:,} "
            f"training images; use the full, unsubsampled training set with {spec_text}"
        )
    if dataset.train_labels is None:
        raise BenchError(
            f"{dataset.name} was loaded without clean training labels, so the image order of {spec_text} "
            f"cannot be checked; load {dataset.name} from its python-pickle files"
        )
    mismatches = int(np.count_nonzero(clean != dataset.train_labels))
    if mismatches:
        raise BenchError(
            f"{path} clean_label disagrees with {dataset.name}'s training labels at {mismatches:,} of "
            f"{expected:,} images, so the images are not in PyTorch's training order; load {dataset.name} "
            f"from the python-pickle batches in their original order before using {spec_text}"
        )
    if noisy.min() < 0 or noisy.max() >= dataset.num_classes:
        raise BenchError(
            f"{path} {label_set.key!r} has labels outside 0..{dataset.num_classes - 1}; "
            f"download the file again from {CIFAR_N_SOURCE}"
        )
    return noisy.copy()


def own_noisy_labels(dataset: "Dataset") -> np.ndarray:
    """The dataset's own noisy training labels (Animal-10N, Clothing1M ...), checked; a fresh int64 array."""
    labels = dataset.own_noisy_labels
    if labels is None:
        suggestion = {
            "cifar10": "cifar10n:worse (or aggre, rand1..rand3) for CIFAR-10's human labels",
            "cifar100": "cifar100n:noisy for CIFAR-100's human labels",
        }.get(dataset.name, "a synthetic spec such as sym:0.4")
        raise BenchError(f"dataset {dataset.name} has no noisy labels of its own for 'real'; use {suggestion}")
    labels = np.asarray(labels)
    # These come from a loader, not the user: a wrong shape here is a loader bug.
    if labels.shape != (training_size(dataset),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{dataset.name}.own_noisy_labels must be integer of shape ({training_size(dataset)},), "
            f"got {labels.dtype} {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= dataset.num_classes):
        raise ValueError(f"{dataset.name}.own_noisy_labels lie outside 0..{dataset.num_classes - 1}")
    return labels.astype(np.int64)
