"""Dataset registry and the in-memory :class:`Dataset` every loader returns.

Loaders only load: no label noise is applied here (that is ``noise/``).  A
loader is a function ``(root: Path, download: bool) -> Dataset`` registered
under a name with :func:`register_dataset`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from noisybench.core import plugins, rules
from noisybench.core.errors import BenchError

if TYPE_CHECKING:  # annotation only: streaming imports torch, registry stays light
    from noisybench.datasets.streaming import JpegStream

DATA_ROOT_ENV = "NOISYBENCH_DATA"
DATASET_PLUGIN_GROUP = "noisybench.datasets"  # other packages' loaders (core/plugins.py)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset held in memory as uint8 arrays.

    ``train_labels`` are the clean training labels, or ``None`` for datasets
    whose only training labels are noisy (Animal-10N, Clothing1M, Food-101N);
    those come in ``own_noisy_labels`` and are used by the ``real`` noise spec.
    ``asym_map`` is the class-dependent flip map of the ``asym`` noise spec
    (source class -> target class), ``None`` when the dataset has none.
    """

    name: str
    train_images: np.ndarray  # uint8, (N, C, H, W)
    train_labels: np.ndarray | None  # int64, (N,), clean
    test_images: np.ndarray  # uint8, (M, C, H, W)
    test_labels: np.ndarray  # int64, (M,)
    class_names: tuple[str, ...]
    asym_map: dict[int, int] | None = None
    own_noisy_labels: np.ndarray | None = None
    # Published rate of the dataset's own noise, for methods that need a rate
    # (Co-teaching's forget rate) where no clean labels exist to measure it.
    own_noise_rate: float | None = None
    extras: dict = field(default_factory=dict)
    # Datasets too large to decode into memory (Clothing1M, Food-101N) leave
    # train_images/test_images as empty (0, 3, 224, 224) arrays and deliver
    # their images as decoded, augmented uint8 batches from these streams;
    # own_noisy_labels / test_labels still hold one label per stream item.
    train_stream: JpegStream | None = None
    test_stream: JpegStream | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_train(self) -> int:
        # A streamed dataset holds no training images in memory: its stream lists them all.
        if self.train_stream is not None:
            return self.train_stream.num_images
        return len(self.train_images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]


Loader = Callable[[Path, bool], Dataset]
_LOADERS: dict[str, Loader] = {}
_DESCRIPTIONS: dict[str, str] = {}
_RULES: dict[str, tuple[int, dict[int, str]]] = {}  # name -> (rule_version, rule_history), where declared


def register_dataset(name: str, description: str = "", rule_version: int | None = None,
                     rule_history: dict[int, str] | None = None):
    """Decorator: register ``fn(root, download) -> Dataset`` under ``name``.  ``rule_version`` and
    ``rule_history``: the version of what the loader delivers (images, labels, order, split) and
    one line per version (core/rules.py); every built-in declares them, a plugin's loader without
    them reads as 1."""
    if rule_version is not None or rule_history is not None:
        rules.check_declaration("dataset", name, rule_version, rule_history)

    def decorate(fn: Loader) -> Loader:
        taken_by = _LOADERS[name].__module__ if name in _LOADERS else None
        plugins.claim(DATASET_PLUGIN_GROUP, name, fn.__module__, taken_by)  # a clash raises, naming both
        _LOADERS[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        if rule_version is not None:
            _RULES[name] = (rule_version, dict(rule_history))
        return fn

    return decorate


def _discover() -> None:
    """Import the installed plugins' loaders once (every question to the registry asks this first)."""
    plugins.load(DATASET_PLUGIN_GROUP, forget=lambda name: [table.pop(name, None)
                                                            for table in (_LOADERS, _DESCRIPTIONS, _RULES)])


def dataset_names() -> list[str]:
    _discover()
    return sorted(_LOADERS)


def describe_datasets() -> dict[str, str]:
    return {name: _DESCRIPTIONS[name] + plugins.marker(DATASET_PLUGIN_GROUP, name) for name in dataset_names()}


def check_dataset_name(name: str) -> None:
    _discover()
    if name not in _LOADERS:
        raise BenchError(
            f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())}"
            + plugins.missing_hint(DATASET_PLUGIN_GROUP, name)
        )


def dataset_rule_declaration(name: str) -> tuple[int, dict[int, str]] | None:
    """(rule_version, rule_history) as the loader's registration declares them; None if it does not."""
    check_dataset_name(name)
    return _RULES.get(name)


def resolve_data_root(root: str | os.PathLike | None) -> Path:
    """``--data-root`` if given, else $NOISYBENCH_DATA, else ./data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else Path("data")


_CACHE: dict[tuple[str, str], Dataset] = {}


def load(name: str, root: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """Load a registered dataset (cached per process: a sweep loads it once)."""
    check_dataset_name(name)
    resolved = resolve_data_root(root)
    key = (name, str(resolved.resolve()))
    if key not in _CACHE:
        _CACHE[key] = _LOADERS[name](resolved, download)
    return _CACHE[key]
