"""Streaming JPEG sources for datasets too large to decode into memory (Clothing1M, Food-101N).

A :class:`JpegStream` is a list of image files plus the recipe the web-scale noisy-label
papers use for them (DivideMix, Li et al. ICLR 2020, dataloader_clothing1M.py; ELR,
CleanNet and others the same): resize the shorter side to 256 (PIL bilinear, as
torchvision's ``Resize(256)`` does on a PIL image), then a random 224x224 crop and a
horizontal flip with probability 1/2 for training, or the central 224x224 crop for
evaluation.  Decoding runs in a torch DataLoader with worker processes; batches come out
as ``(x, idx)``: ``x`` uint8 (B, 3, 224, 224) on the requested device, ``idx`` int64 the
positions of the images in the stream's full list, so the trainer gathers labels and
per-sample state with it exactly as for in-memory datasets.  Normalisation is the
trainer's, as for every other dataset.

Per epoch a training stream either walks its whole list in a fresh random order, or --
with ``epoch_size`` set -- draws DivideMix's class-balanced subsample (see
:func:`class_balanced_subsample`).  Every random choice of an epoch (the subsample, the
order, each crop offset and flip) is drawn up front in the main process from
``numpy.random.default_rng([seed, epoch])``, so a batch's content depends only on
(seed, epoch) and not on the number of workers or their scheduling.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from noisybench.datasets.readers import DamagedDataError, default_num_threads, one_line

if TYPE_CHECKING:  # torch is imported where batches are made, so `import datasets` stays quick
    import torch

RESIZE_SHORT_SIDE = 256  # DivideMix / ELR / CleanNet: transforms.Resize(256)
CROP_SIZE = 224  # ... then RandomCrop(224) (train) or CenterCrop(224) (test)
# Clothing1M's per-epoch subsample in DivideMix: num_batches (1000) x batch_size (32)
# images, at most 32,000 / 14 from each noisy class (Train_clothing1M.py defaults).
DIVIDEMIX_CLOTHING1M_EPOCH_SIZE = 32_000


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions carry the same label (0 for the first)."""
    n = len(labels)
    by_label = np.argsort(labels, kind="stable")  # stable: keeps the order within each class
    sorted_labels = labels[by_label]
    group_starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]) if n else np.empty(0, int)
    group_sizes = np.diff(np.r_[group_starts, n])
    ranks = np.empty(n, dtype=np.int64)
    ranks[by_label] = np.arange(n) - np.repeat(group_starts, group_sizes)
    return ranks


def class_balanced_subsample(
    labels: np.ndarray, num_samples: int, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Positions of one epoch's class-balanced subsample, in the order to visit them.

    DivideMix's draw (dataloader_clothing1M.py, mode 'all'), vectorised: shuffle the
    whole list; walk it, keeping an item while fewer than ``num_samples / num_classes``
    of its (noisy) class and fewer than ``num_samples`` in all are kept; shuffle the
    kept items.  Keeping "the first ``num_samples`` items whose rank within their class
    is below the quota" is the same set the walk keeps.  A class with fewer items than
    the quota contributes all it has, so the epoch may hold fewer than ``num_samples``.
    """
    order = rng.permutation(len(labels))
    quota = num_samples / num_classes  # a float, compared as DivideMix does (32,000/14 -> 2,286 each)
    eligible = order[_rank_within_class(labels[order]) < quota]
    kept = eligible[:num_samples]
    return kept[rng.permutation(len(kept))]


def subsample_size(labels: np.ndarray, num_samples: int, num_classes: int) -> int:
    """How many items :func:`class_balanced_subsample` returns: the same for every draw."""
    per_class_cap = math.ceil(num_samples / num_classes)  # ranks 0..ceil(q)-1 are below quota q
    counts = np.bincount(labels, minlength=num_classes)
    return int(min(num_samples, np.minimum(counts, per_class_cap).sum()))


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch visits, in order: list positions, crop offsets, flips."""

    items: np.ndarray  # int64 (n,): positions in the stream's full list
    crop_fractions: np.ndarray  # float64 (n, 2): (top, left) as a fraction of the free range
    flips: np.ndarray  # bool (n,): mirror left-right


def resized_to_short_side(image, size: int):
    """PIL image with its shorter side ``size``, the longer scaled and truncated like
    torchvision's Resize(int) (``int(size * long / short)``); bilinear, with PIL's antialiasing."""
    from PIL import Image

    width, height = image.size
    if min(width, height) == size:
        return image
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    return image.resize(new_size, Image.BILINEAR)


def crop_offset(free: int, fraction: float | None) -> int:
    """Top (or left) of a crop: uniform over 0..free when a fraction in [0, 1) is given
    (torchvision's RandomCrop), torchvision's CenterCrop rounding when it is None."""
    if fraction is None:
        return int(round(free / 2.0))
    return min(int(fraction * (free + 1)), free)


class _PlannedJpegs:
    """The images of one epoch plan, decoded and cropped in a DataLoader worker (a
    map-style dataset: DataLoader needs only __len__ and __getitem__).

    Returns an error text instead of raising, so that the main process can turn a bad
    file into one BenchError line (an exception raised in a worker reaches the caller
    wrapped in a multi-line traceback).
    """

    def __init__(self, stream: "JpegStream", plan: EpochPlan):
        self.image_root = str(stream.image_root)
        # Only this epoch's paths travel to the workers, not the full (up to 1M) list.
        self.relative_paths = stream.relative_paths[plan.items]
        self.items = plan.items
        self.crop_fractions = plan.crop_fractions if stream.augment else None
        self.flips = plan.flips
        self.resize = stream.resize
        self.crop = stream.crop

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        import torch
        from PIL import Image

        path = os.path.join(self.image_root, self.relative_paths[k].decode("utf-8"))
        try:
            with Image.open(path) as image:
                pixels = np.asarray(resized_to_short_side(image.convert("RGB"), self.resize), dtype=np.uint8)
        except (OSError, ValueError) as err:  # missing, truncated or not an image
            blank = torch.zeros(3, self.crop, self.crop, dtype=torch.uint8)
            return blank, int(self.items[k]), f"{path}: {type(err).__name__}: {one_line(err)}"
        height, width = pixels.shape[:2]
        fractions = (None, None) if self.crop_fractions is None else self.crop_fractions[k]
        top = crop_offset(height - self.crop, fractions[0])
        left = crop_offset(width - self.crop, fractions[1])
        pixels = pixels[top: top + self.crop, left: left + self.crop]
        if self.flips[k]:
            pixels = pixels[:, ::-1]
        chw = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        return chw, int(self.items[k]), ""


def _collate(samples):
    import torch

    images, items, errors = zip(*samples)
    return torch.stack(images), torch.tensor(items, dtype=torch.int64), errors


@dataclass(frozen=True, eq=False)
class JpegStream:
    """A list of JPEG files delivered as decoded, cropped uint8 batches.

    ``relative_paths`` are bytes (numpy ``S`` dtype) relative to ``image_root``: a flat
    array, not a million Python strings, so forked workers do not copy it page by page
    through reference counting.  ``labels`` are the labels the class-balanced draw counts
    (the noisy ones for a training list); required only with ``epoch_size``.

    ``num_images`` is the full list (what ``idx`` indexes); ``num_samples`` is how many
    images one epoch's :meth:`batches` yields.
    """

    image_root: Path
    relative_paths: np.ndarray = field(repr=False)
    labels: np.ndarray | None = field(repr=False)
    num_classes: int
    augment: bool  # random crop + flip (training) or the central crop (evaluation)
    shuffle: bool  # a fresh order per epoch when walking the whole list
    epoch_size: int | None = None  # class-balanced subsample of this size per epoch; None: every image
    num_workers: int = field(default_factory=default_num_threads)
    resize: int = RESIZE_SHORT_SIDE
    crop: int = CROP_SIZE
    dataset: str = "dataset"  # for error messages
    how_to_get: str = ""

    def __post_init__(self) -> None:
        if self.relative_paths.dtype.kind != "S" or self.relative_paths.ndim != 1:
            raise ValueError("relative_paths must be a 1-d numpy bytes ('S') array")
        if self.labels is not None and self.labels.shape != self.relative_paths.shape:
            raise ValueError(f"{len(self.labels)} labels for {len(self.relative_paths)} paths")
        if self.epoch_size is not None and (self.labels is None or self.epoch_size <= 0):
            raise ValueError("a class-balanced epoch_size needs labels and must be positive")
        if self.crop > self.resize:
            raise ValueError(f"crop {self.crop} is larger than the resized short side {self.resize}")

    @property
    def num_images(self) -> int:
        return len(self.relative_paths)

    @property
    def num_samples(self) -> int:
        if self.epoch_size is None:
            return self.num_images
        return subsample_size(self.labels, self.epoch_size, self.num_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.crop, self.crop)

    def path(self, item: int) -> Path:
        return self.image_root / self.relative_paths[item].decode("utf-8")

    def replace(self, **changes) -> "JpegStream":
        """A copy with some settings changed, e.g. ``replace(augment=False)`` for
        DivideMix's eval_train pass or ``replace(epoch_size=None)`` for every image."""
        return dataclasses.replace(self, **changes)

    def epoch_plan(self, epoch: int, seed: int) -> EpochPlan:
        """The items, crops and flips of one epoch, from default_rng([seed, epoch]) alone."""
        if seed < 0 or epoch < 0:
            raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
        rng = np.random.default_rng([seed, epoch])
        if self.epoch_size is not None:
            items = class_balanced_subsample(self.labels, self.epoch_size, self.num_classes, rng)
        elif self.shuffle:
            items = rng.permutation(self.num_images)
        else:
            items = np.arange(self.num_images)
        if self.augment:
            crop_fractions = rng.random((len(items), 2))
            flips = rng.random(len(items)) < 0.5
        else:
            crop_fractions = np.full((len(items), 2), 0.5)
            flips = np.zeros(len(items), dtype=bool)
        return EpochPlan(items.astype(np.int64), crop_fractions, flips)

    def batches(
        self,
        epoch: int,
        seed: int,
        batch_size: int,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x uint8 (B, 3, crop, crop), idx int64 (B,))`` on ``device`` for one epoch."""
        import torch

        device = torch.device(device)
        plan = self.epoch_plan(epoch, seed)
        loader = torch.utils.data.DataLoader(
            _PlannedJpegs(self, plan),
            batch_size=batch_size,
            shuffle=False,  # the plan already holds this epoch's order
            drop_last=drop_last,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
            prefetch_factor=4 if self.num_workers > 0 else None,
        )
        for images, items, errors in loader:
            failed = next((text for text in errors if text), None)
            if failed is not None:
                raise DamagedDataError(f"{self.dataset} image unreadable: {failed}; {self.how_to_get}")
            yield images.to(device, non_blocking=True), items.to(device, non_blocking=True)
