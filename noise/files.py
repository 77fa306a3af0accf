"""Export and import of noisy label sets as ``.npy`` int64 arrays.

Exporting lets other codebases train on exactly the labels a trial used; importing
(``--noise file:PATH.npy``) lets this benchmark use labels made elsewhere.  The file holds
one label per training sample, in the dataset's training order, and nothing else.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisybench.core.errors import BenchError
from noisybench.noise._dataset import training_size

if TYPE_CHECKING:
    from noisybench.datasets.registry import Dataset


def save_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write ``labels`` as a 1-D int64 ``.npy`` file (parents created); return the path written.

    ``numpy.save`` would silently append ``.npy`` to another name, so the name must end in it.
    """
    path = Path(path)
    if path.suffix != ".npy":
        raise BenchError(f"label file {str(path)!r} must end in .npy; give a name like {path.stem}.npy")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, labels.astype(np.int64), allow_pickle=False)
    return path


def load_label_file(path: str | os.PathLike, dataset: "Dataset") -> np.ndarray:
    """Read a label file for ``dataset`` and check it: one line of :class:`BenchError` if unusable.

    Accepted: a 1-D array of any integer dtype (int32 from other codebases is common),
    with exactly one label per training sample, each in [0, num_classes).  Returned as int64.
    """
    path = Path(path)
    shown = str(path.resolve()) if not path.is_absolute() else str(path)
    if not path.is_file():
        raise BenchError(f"label file {shown} not found; check the path (relative paths start at the current directory)")
    try:
        labels = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise BenchError(
            f"cannot read label file {shown} as a .npy array ({error}); write it with numpy.save(path, labels.astype('int64'))"
        ) from None
    if not isinstance(labels, np.ndarray):  # an .npz archive loads as a mapping
        raise BenchError(f"label file {shown} is not a single .npy array; write it with numpy.save(path, labels)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise BenchError(
            f"label file {shown} holds {labels.dtype} values, not integer class indices; "
            f"save labels.astype('int64') instead"
        )
    if labels.ndim != 1:
        raise BenchError(
            f"label file {shown} has shape {labels.shape}; it must be 1-D with one class index per "
            f"training sample (not one-hot: save labels.argmax(1))"
        )
    expected = training_size(dataset)
    if len(labels) != expected:
        raise BenchError(
            f"label file {shown} has {len(labels):,} labels but {dataset.name} has {expected:,} training "
            f"samples; export one label per training sample, in the dataset's training order"
        )
    num_classes = dataset.num_classes
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise BenchError(
            f"label file {shown} has labels from {labels.min()} to {labels.max()} but {dataset.name} has "
            f"classes 0..{num_classes - 1}; relabel to 0-based class indices"
        )
    return labels.astype(np.int64)
