"""The training and test sets on the device, and the batched augmentation.

The whole training set lives on the device as uint8; batches are gathered by index; pad-4
random crop + horizontal flip run batched on the device (airbench-style).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from noisybench.bench.trainer.protocols import Recipe, check_recipe_fits_dataset
from noisybench.bench.trainer.arithmetic import Arithmetic
from noisybench.bench.trainer.device import single_threaded_on_cpu
from noisybench.core.errors import BenchError
from noisybench.core.seeding import derive_seed


def split_validation(num_train: int, fraction: float, seed_parts: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): a seeded random split of the noisy training set.

    Seeded by (dataset, noise, seed) only, so every method of a seed holds out the same samples.
    """
    if fraction <= 0:
        return np.arange(num_train), np.arange(0)
    rng = np.random.default_rng(derive_seed("validation-split", *seed_parts))
    order = rng.permutation(num_train)
    num_val = int(round(fraction * num_train))
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def _writable(images: np.ndarray) -> np.ndarray:
    """A contiguous array torch may share: a read-only one (a loader's view of file bytes) is
    copied, since torch.from_numpy warns on it and could not honour the read-only flag."""
    images = np.ascontiguousarray(images)
    return images if images.flags.writeable else images.copy()


class DeviceData:
    """Training and test sets as uint8 tensors on the device, with their labels."""

    def __init__(self, dataset, noisy_labels: np.ndarray, recipe: Recipe, device: torch.device,
                 train_idx: np.ndarray, val_idx: np.ndarray, arithmetic: Arithmetic | None = None):
        check_recipe_fits_dataset(recipe, dataset)
        self.device = device
        self.arithmetic = arithmetic or Arithmetic.resolve(device)
        self.augment = recipe.augment
        self.crop_padding = recipe.crop_padding
        # Streamed datasets (Clothing1M, Food-101N) leave `images` and `test_images` empty: their
        # batches come decoded, resized and (for training) randomly cropped and flipped from these.
        self.train_stream = dataset.train_stream
        if self.train_stream is not None and not recipe.augment:
            self.train_stream = self.train_stream.replace(augment=False)
        self.test_stream = dataset.test_stream
        if self.train_stream is not None and len(val_idx):
            raise BenchError(f"{dataset.name} is streamed and cannot hold out a noisy validation split; "
                             "use a protocol and method without one")
        self.images = torch.from_numpy(_writable(dataset.train_images)).to(device)
        self.noisy = torch.from_numpy(noisy_labels.astype(np.int64)).to(device)
        self.has_clean = dataset.train_labels is not None
        # Without clean training labels (Animal-10N, Clothing1M, Food-101N) every clean-label
        # diagnostic is left out (EpochMeter checks has_clean).  -1 marks them unknown, rather than
        # a copy of the noisy labels, so that nothing can score the noisy labels against themselves.
        clean = dataset.train_labels if self.has_clean else np.full(len(noisy_labels), -1)
        self.clean = torch.from_numpy(np.asarray(clean, dtype=np.int64)).to(device)
        self.is_clean = (self.noisy == self.clean).float()
        self.test_images = torch.from_numpy(_writable(dataset.test_images)).to(device)
        if recipe.transpose_images:  # after the noise was drawn on the images as released
            self.images = self.images.transpose(-1, -2).contiguous()
            self.test_images = self.test_images.transpose(-1, -2).contiguous()
        self.test_labels = torch.from_numpy(dataset.test_labels.astype(np.int64)).to(device)
        self.train_idx = torch.from_numpy(train_idx).to(device)
        self.val_idx = torch.from_numpy(val_idx).to(device)
        c = self.images.shape[1]
        if recipe.mean_std is not None:  # fixed statistics, e.g. the ones pretrained weights expect
            self.mean = torch.tensor(recipe.mean_std[0], device=device).view(1, c, 1, 1)
            self.std = torch.tensor(recipe.mean_std[1], device=device).view(1, c, 1, 1)
        elif recipe.normalize:
            # Statistics of the training images only (never the test set).
            flat = self.images.transpose(0, 1).reshape(c, -1).float() / 255.0
            self.mean = flat.mean(dim=1).view(1, c, 1, 1)
            self.std = flat.std(dim=1).clamp_min(1e-3).view(1, c, 1, 1)
        else:
            self.mean = torch.zeros(1, c, 1, 1, device=device)
            self.std = torch.ones(1, c, 1, 1, device=device)
        self.channels_last = self.arithmetic.channels_last and self.images.dim() == 4

    @property
    def num_train(self) -> int:
        """Every training sample (validation included), in memory or listed by the stream."""
        return self.train_stream.num_images if self.train_stream is not None else self.images.shape[0]

    def to_input(self, images_uint8: Tensor) -> Tensor:
        with single_threaded_on_cpu(images_uint8.device):
            x = (images_uint8.float() / 255.0 - self.mean) / self.std
            return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_input(self, index: Tensor, generator: torch.Generator | None) -> Tensor:
        with single_threaded_on_cpu(self.device):
            x = self.images[index]
            if self.augment and generator is not None:
                x = random_crop_flip(x, generator, padding=self.crop_padding)
            return self.to_input(x)


def random_crop_flip(images: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Batched torchvision ``RandomCrop(size, padding=4)`` + ``RandomHorizontalFlip()``.

    Zero padding, a uniform offset in [0, 2*padding] per sample and axis, and a flip with
    probability 1/2 -- the same distribution as the per-sample transforms, in three gathers.
    """
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    rows = offsets[:, 0:1] + torch.arange(h, device=device)  # (n, h)
    cols = offsets[:, 1:2] + torch.arange(w, device=device)  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch_index = torch.arange(n, device=device)[:, None, None, None]
    channel_index = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]
