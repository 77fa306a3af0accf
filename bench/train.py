"""The shared trainer: one trial, any method, CPU or GPU.

Written for the GPU (airbench-style) and correct on the CPU:
- the training set lives on the device as uint8; batches are gathered by index and carry
  their sample indices; pad-4 random crop + flip run batched on the device;
- bf16 autocast and channels_last on CUDA only, fp32 on the CPU;
- no host sync inside the step: losses and diagnostics accumulate in device tensors and
  are read once per epoch;
- every source of randomness is a Generator seeded from the spec (and the epoch), so an
  interrupted trial resumed from its checkpoint reproduces the uninterrupted one.
"""
from __future__ import annotations

import contextlib
import io
import math
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import datasets
import noise
from bench.errors import BenchError
from bench.models import build_model, load_pretrained, read_state_dict
from bench.protocols import Recipe, check_recipe_fits_dataset, resolve_recipe
from bench.seeding import derive_seed
from bench.spec import TrialSpec
from methods import build_hparams, get_method
from methods.base import Batch, Method, MethodContext, StepOutput, TrainerView
from results.store import TrialDir, TrialStore, atomic_write_bytes, atomic_write_json

EVAL_BATCH = 1024
# Streamed datasets' 224x224 images: 256 of them are 150 MB as floats (1024 would be 600 MB).
STREAM_EVAL_BATCH = 256


class TrainingDiverged(RuntimeError):
    """A non-finite training loss: the trial fails visibly instead of training on NaNs."""


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchError(f"--device {name}: not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


# --------------------------------------------------------------------------------------
# Data on the device
# --------------------------------------------------------------------------------------
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


class DeviceData:
    """Training and test sets as uint8 tensors on the device, with their labels."""

    def __init__(self, dataset, noisy_labels: np.ndarray, recipe: Recipe, device: torch.device,
                 train_idx: np.ndarray, val_idx: np.ndarray):
        check_recipe_fits_dataset(recipe, dataset)
        self.device = device
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
        self.images = torch.from_numpy(np.ascontiguousarray(dataset.train_images)).to(device)
        self.noisy = torch.from_numpy(noisy_labels.astype(np.int64)).to(device)
        self.has_clean = dataset.train_labels is not None
        # Without clean training labels (Animal-10N, Clothing1M, Food-101N) every clean-label
        # diagnostic is left out (EpochMeter checks has_clean).  -1 marks them unknown, rather than
        # a copy of the noisy labels, so that nothing can score the noisy labels against themselves.
        clean = dataset.train_labels if self.has_clean else np.full(len(noisy_labels), -1)
        self.clean = torch.from_numpy(np.asarray(clean, dtype=np.int64)).to(device)
        self.is_clean = (self.noisy == self.clean).float()
        self.test_images = torch.from_numpy(np.ascontiguousarray(dataset.test_images)).to(device)
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
        self.channels_last = device.type == "cuda" and self.images.dim() == 4

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


@contextlib.contextmanager
def single_threaded_on_cpu(device: torch.device):
    """Run a batch's input preparation on one CPU thread.

    Gathering, cropping and normalising a batch are a dozen small memory-bound ops that threads
    do not speed up, yet each multi-threaded op waits for all of torch's threads to be scheduled:
    on a busy CPU (load 13 on 2 cores) that made preparing 64 CIFAR images take 128 ms instead
    of 1.6 ms, and the trainer slower than a DataLoader loop whose workers prepare batches
    single-threaded.  Element-wise ops and gathers give the same bits on any number of threads.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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


# --------------------------------------------------------------------------------------
# The optimiser and its schedule
# --------------------------------------------------------------------------------------
def build_optimizer(recipe: Recipe, params) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    fused = all(p.is_cuda for p in params) and len(params) > 0
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                               nesterov=recipe.nesterov, fused=fused or None)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, betas=(recipe.momentum, 0.999),
                                weight_decay=recipe.weight_decay, fused=fused or None)
    raise BenchError(f"unknown optimizer {recipe.optimizer!r} in the protocol; use sgd or adam")


def lr_and_beta1(recipe: Recipe, epoch: int) -> tuple[float, float]:
    """Learning rate (and Adam's beta1) for 0-based ``epoch``: a pure function, so a resumed
    trial needs no scheduler state."""
    if recipe.schedule == "constant":
        return recipe.lr, recipe.momentum
    if recipe.schedule == "multistep":
        drops = sum(1 for m in recipe.milestones if epoch >= m)
        return recipe.lr * recipe.lr_gamma**drops, recipe.momentum
    if recipe.schedule == "coteaching":
        # bhanML/Co-teaching main.py: alpha_plan[i] = (n_epoch - i)/(n_epoch - decay_start) * lr and
        # beta1_plan[i] = 0.1 for i >= decay_start.  Its epoch 0 only evaluates; training runs over
        # i = 1 .. n_epoch-1.  So our 0-based trained epoch e is its i = e + 1, with n_epoch =
        # recipe.epochs + 1 (epochs=199, decay_start=80 is the reference's n_epoch=200 exactly).
        i, n_epoch = epoch + 1, recipe.epochs + 1
        if i < recipe.decay_start:
            return recipe.lr, recipe.momentum
        return recipe.lr * (n_epoch - i) / max(1, n_epoch - recipe.decay_start), 0.1
    raise BenchError(f"unknown schedule {recipe.schedule!r} in the protocol")


def set_lr(optimizer: torch.optim.Optimizer, lr: float, beta1: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        if "betas" in group:
            group["betas"] = (beta1, group["betas"][1])


# --------------------------------------------------------------------------------------
# Metrics accumulated on the device
# --------------------------------------------------------------------------------------
class EpochMeter:
    """Sums kept as device tensors during an epoch and read with one host sync at its end.

    ``add`` runs after every step, so nothing in it may move data between host and device: the
    sample count is a Python int taken from shapes (a ``torch.tensor(n, device=cuda)`` per step
    would be a blocking copy), the clean labels are gathered only for the selections and
    relabellings a method reports, and the clean share of all samples seen is counted once, in
    ``read``, from the epoch's indices.
    """

    def __init__(self, data: "DeviceData"):
        self.device = data.device
        self.has_clean = data.has_clean
        self.clean_labels = data.clean
        self.is_clean = data.is_clean
        self.sums: dict[str, Tensor] = {}
        self.steps = 0
        self.samples = 0
        self.indices: list[Tensor] = []

    def _add(self, key: str, value: Tensor) -> None:
        value = value.detach().float()
        if key in self.sums:
            self.sums[key].add_(value)
        else:
            self.sums[key] = value.clone()

    def add(self, out: StepOutput, index: Tensor) -> None:
        self.steps += 1
        self.samples += int(index.shape[0])
        self.indices.append(index)
        self._add("loss", out.loss)
        if self.has_clean and out.selected:
            is_clean = self.is_clean[index]
        for name, weight in out.selected.items():
            weight = weight.detach().float()
            self._add(f"sel/{name}/w", weight.sum())
            if self.has_clean:
                self._add(f"sel/{name}/w_clean", (weight * is_clean).sum())
        if self.has_clean and out.relabelled:
            clean = self.clean_labels[index]
            for name, predicted in out.relabelled.items():
                self._add(f"rel/{name}", (predicted == clean).float().sum())
        for name, value in out.stats.items():
            self._add(f"stat/{name}", value)

    def read(self) -> dict[str, float]:
        if self.has_clean and self.indices:
            self._add("clean", self.is_clean[torch.cat(self.indices)].sum())
        keys = list(self.sums)
        values = torch.stack([self.sums[k] for k in keys]).tolist() if keys else []
        sums = dict(zip(keys, values))
        n = max(float(self.samples), 1.0)
        clean = sums.get("clean", 0.0)
        noisy = n - clean
        out = {"train_loss": sums.get("loss", float("nan")) / max(self.steps, 1)}
        names = {k.split("/")[1] for k in keys if k.startswith("sel/")}
        for name in sorted(names):
            w = sums[f"sel/{name}/w"]
            out[f"{name}kept_fraction"] = w / n
            if self.has_clean:
                w_clean = sums[f"sel/{name}/w_clean"]
                out[f"{name}label_precision"] = w_clean / w if w > 0 else float("nan")
                out[f"{name}label_recall"] = w_clean / clean if clean > 0 else float("nan")
                out[f"{name}weight_noisy"] = (w - w_clean) / noisy if noisy > 0 else float("nan")
        for key, value in sums.items():
            if key.startswith("rel/"):
                out[f"{key[4:]}_acc"] = value / n
            elif key.startswith("stat/"):
                out[key[5:]] = value / max(self.steps, 1)
        return out


def selection_scores(name: str, weight: Tensor, is_clean: Tensor, has_clean: bool) -> dict[str, float]:
    """A whole-set selection scored like EpochMeter scores per-batch ones (one host sync)."""
    kept, clean = weight.sum(), is_clean.sum()
    kept_clean = (weight * is_clean).sum()
    values = torch.stack([kept / max(weight.numel(), 1), kept_clean / kept.clamp_min(1e-12),
                          kept_clean / clean.clamp_min(1e-12), kept]).tolist()
    out = {f"{name}kept_fraction": values[0]}
    if has_clean:
        out[f"{name}label_precision"] = values[1] if values[3] > 0 else float("nan")
        out[f"{name}label_recall"] = values[2]
    return out


# --------------------------------------------------------------------------------------
# Evaluation and the view epoch hooks get
# --------------------------------------------------------------------------------------
def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict_logits(fn: Callable[[Tensor], Tensor], data: DeviceData, images: Tensor,
                   index: Tensor | None = None, batch: int = EVAL_BATCH) -> Tensor:
    """Logits for ``images[index]`` in large batches (fp32 result)."""
    n = images.shape[0] if index is None else index.shape[0]
    outs = []
    for start in range(0, n, batch):
        chunk = images[start:start + batch] if index is None else images[index[start:start + batch]]
        with _autocast(data.device):
            outs.append(fn(data.to_input(chunk)).float())
    return torch.cat(outs) if outs else torch.zeros(0, device=data.device)


@torch.inference_mode()
def stream_outputs(fn: Callable[[Tensor], tuple[Tensor, ...]], data: DeviceData, stream, seed: int = 0,
                   epoch: int = 0) -> tuple[Tensor, ...]:
    """``fn`` (returning a tuple of tensors) over every image of ``stream`` in list order.

    The stream is walked whole and unshuffled, so row i of each result is image i; its own
    ``augment`` setting decides between random and central crops.
    """
    whole = stream.replace(shuffle=False, epoch_size=None)
    outs: list[tuple[Tensor, ...]] = []
    for images, _ in whole.batches(epoch, seed, STREAM_EVAL_BATCH, data.device):
        with _autocast(data.device):
            outs.append(tuple(t.float() for t in fn(data.to_input(images))))
    return tuple(torch.cat(parts) for parts in zip(*outs))


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    return (logits.argmax(dim=1) == labels).float().mean()


def per_class_hits(logits: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Correct predictions and samples per true class, as (C,) float tensors on the device."""
    correct = (logits.argmax(dim=1) == labels).float()
    hits = torch.zeros(num_classes, device=labels.device).index_add_(0, labels, correct)
    return hits, torch.bincount(labels, minlength=num_classes).float()


def per_class_accuracy(hits: Tensor, counts: Tensor) -> Tensor:
    """(C,) accuracy per true class; NaN for a class with no sample."""
    return torch.where(counts > 0, hits / counts.clamp_min(1), torch.nan)


def balanced_accuracy(logits: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Mean of per-class accuracies (classes absent from ``labels`` are skipped)."""
    return per_class_accuracy(*per_class_hits(logits, labels, num_classes)).nanmean()  # no mask: no host sync


def split_per_class(values: list[float], num_scalars: int, keys: list[str]) -> dict:
    """The epoch's one host read, unpacked: scalars by name, then ``test_acc_per_class`` (None
    where a class has no test sample, as JSON has no NaN)."""
    out = dict(zip(keys, values[:num_scalars]))
    out["test_acc_per_class"] = [None if math.isnan(v) else v for v in values[num_scalars:]]
    return out


class _TrainerViewImpl(TrainerView):
    def __init__(self, trainer: "Trainer"):
        self._t = trainer

    @property
    def noisy_labels(self) -> Tensor:
        return self._t.data.noisy

    @property
    def train_index(self) -> Tensor:
        """Indices of the samples trained on (the noisy validation split excluded)."""
        return self._t.data.train_idx

    def predict_train(self, augment: bool = False) -> Tensor:
        data, method = self._t.data, self._t.method
        was_training = method.training
        method.eval()
        try:
            if data.train_stream is not None:
                stream = data.train_stream.replace(augment=augment)
                seed = derive_seed(self._t.spec.hash, "hook-augment", self._t.epoch)
                return stream_outputs(lambda x: (method.predict(x),), data, stream, seed)[0]
            if not augment:
                return predict_logits(method.predict, data, data.images)
            g = self._t.generator("hook-augment", self._t.epoch)
            outs = []
            with torch.inference_mode():
                for start in range(0, data.images.shape[0], EVAL_BATCH):
                    idx = torch.arange(start, min(start + EVAL_BATCH, data.images.shape[0]), device=data.device)
                    with _autocast(data.device):
                        outs.append(method.predict(data.train_input(idx, g)).float())
            return torch.cat(outs)
        finally:
            method.train(was_training)

    def embed_train(self) -> tuple[Tensor, Tensor]:
        data, method = self._t.data, self._t.method
        network = method.networks()[0]
        was_training = method.training
        method.eval()
        feats, logits = [], []
        try:
            if data.train_stream is not None:  # central crops, as the in-memory path embeds unaugmented
                logits, features = stream_outputs(lambda x: network(x, return_features=True), data,
                                                  data.train_stream.replace(augment=False))
                return features, logits
            with torch.inference_mode():
                for start in range(0, data.images.shape[0], EVAL_BATCH):
                    with _autocast(data.device):
                        lg, ft = network(data.to_input(data.images[start:start + EVAL_BATCH]), return_features=True)
                    logits.append(lg.float())
                    feats.append(ft.float())
        finally:
            method.train(was_training)
        return torch.cat(feats), torch.cat(logits)

    def reset_optimizer(self) -> None:
        """A fresh optimiser over the method's current networks (rounds that re-initialise)."""
        self._t.optimizer = build_optimizer(self._t.recipe, self._t.method.parameters())

    def validation_accuracy(self) -> dict[str, float]:
        return dict(self._t.validation)

    def report_selection(self, name: str, mask: Tensor) -> None:
        data = self._t.data
        weight = mask.detach().float()[data.train_idx]
        is_clean = data.is_clean[data.train_idx]
        self._t.hook_metrics.update(selection_scores(name, weight, is_clean, data.has_clean))


# --------------------------------------------------------------------------------------
# One trial
# --------------------------------------------------------------------------------------
@dataclass
class TrialSetup:
    """Everything a trial needs before its first step (shared by run_trial and `bench speed`)."""

    spec: TrialSpec
    recipe: Recipe
    dataset: object
    noisy: object
    data: DeviceData
    method: Method


def setup_trial(spec: TrialSpec, device: torch.device, data_root=None, dataset=None) -> TrialSetup:
    """Data, noisy labels, recipe and method of one trial, on ``device``.

    ``dataset``: an in-memory Dataset to use instead of loading ``spec.dataset`` (`bench speed`
    times the real trial on synthetic data of a real dataset's shape this way).
    """
    if dataset is None:
        dataset = datasets.load(spec.dataset, data_root)
    noise_spec = noise.parse_noise(spec.noise)
    noisy = noise.apply_noise(noise_spec, dataset, spec.seed, data_root=data_root)
    recipe = resolve_recipe(spec.protocol, spec.dataset, spec.method, model=spec.model,
                            epochs=spec.epochs, batch_size=spec.batch_size)
    hparams = build_hparams(spec.method, dict(spec.hparams))
    # Validation is held out when the protocol or the method asks (Me-Momentum's data_percent=0.9):
    # the larger fraction wins, and the split depends on (dataset, noise, seed) and that fraction only.
    val_fraction = max(recipe.val_fraction, get_method(spec.method).validation_fraction(hparams))
    train_idx, val_idx = split_validation(len(noisy.labels), val_fraction,
                                          (spec.dataset, spec.noise, spec.seed))
    data = DeviceData(dataset, noisy.labels, recipe, device, train_idx, val_idx)

    # --pretrained: read once, copied into every network the method builds (fc stays fresh).
    initial_weights = read_state_dict(spec.pretrained) if spec.pretrained else None

    def build_network(i: int) -> nn.Module:
        # Scoped seeding: the i-th network of a trial starts from the same weights on every run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("init", spec.hash, i))
            net = build_model(recipe.model, dataset.num_classes, dataset.image_shape)
        if initial_weights is not None:
            load_pretrained(net, initial_weights, recipe.model, spec.pretrained)
        net = net.to(device)
        if data.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    ctx = MethodContext(
        num_classes=dataset.num_classes, num_train=len(noisy.labels), epochs=recipe.epochs,
        noise_kind=noise_spec.kind, noise_rate=noisy.nominal_rate, device=device,
        seed=derive_seed("method-seed", spec.hash), build_network=build_network,
    )
    method = get_method(spec.method)(hparams, ctx).to(device)
    return TrialSetup(spec, recipe, dataset, noisy, data, method)


# Penultimate-feature snapshots (`bench run --save-features`), one file per listed epoch in the
# trial directory; `bench plot tsne` reads them.
FEATURE_SNAPSHOT_NAME = "features_e{epoch}.npz"


def save_feature_snapshot(view: TrainerView, data: DeviceData, path, epoch: int) -> None:
    """The training set's penultimate features after ``epoch`` with its clean, noisy and
    predicted labels (the LEND paper's Fig. 1 material), written atomically.

    Features are stored as float16: t-SNE needs no more precision, and CIFAR's 50,000 x 512
    features take 50 MB instead of 100.  ``predicted`` is the argmax of the same network's logits.
    """
    import io

    features, logits = view.embed_train()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, epoch=np.int64(epoch), features=features.cpu().numpy().astype(np.float16),
        clean=data.clean.cpu().numpy(), noisy=data.noisy.cpu().numpy(),
        predicted=logits.argmax(dim=1).cpu().numpy(), has_clean=np.bool_(data.has_clean),
        in_train_split=np.isin(np.arange(data.num_train), data.train_idx.cpu().numpy()),
    )
    atomic_write_bytes(path, buffer.getvalue())


class Trainer:
    def __init__(self, setup: TrialSetup, trial: TrialDir | None = None, show_progress: bool = False,
                 checkpoint_every: int = 1, feature_epochs: tuple[int, ...] = ()):
        self.setup = setup
        self.spec, self.recipe, self.data, self.method = setup.spec, setup.recipe, setup.data, setup.method
        self.trial = trial
        self.show_progress = show_progress
        self.checkpoint_every = checkpoint_every
        self.feature_epochs = frozenset(feature_epochs)  # 1-based epochs after which to snapshot features
        self.optimizer = build_optimizer(self.recipe, self.method.parameters())
        if self.data.device.type == "cuda":
            # Every step has the same shapes (the last batch of an epoch aside), so cuDNN's
            # autotuner picks each convolution's fastest kernel once.  GPU training is not
            # bitwise reproducible anyway (atomic adds in the backward), so nothing is lost.
            torch.backends.cudnn.benchmark = True
        self.view = _TrainerViewImpl(self)
        self.epoch = 0
        self.num_classes = setup.dataset.num_classes
        # Methods whose rounds vary in length (Me-Momentum) ask for more epochs than the protocol's;
        # the trainer never runs past this budget.
        self.max_epochs = self.method.epoch_budget(self.recipe.epochs)
        if self.max_epochs < 1:
            raise ValueError(f"{self.spec.method}: epoch budget {self.max_epochs} < 1")
        self.validation: dict[str, float] = {}  # this epoch's noisy-validation accuracy, for hooks
        self.hook_metrics: dict[str, float] = {}  # what hooks reported through the view this epoch
        self.end_note: str | None = None  # why training ended before the budget, or that it hit it

    def generator(self, *stream) -> torch.Generator:
        g = torch.Generator(device=self.data.device)
        g.manual_seed(derive_seed(self.spec.hash, *stream))
        return g

    def batch_order(self, epoch: int) -> list[Tensor]:
        """This epoch's shuffled batches of training indices (the last partial batch is kept,
        unless it holds a single sample, which BatchNorm cannot train on)."""
        g = torch.Generator()
        g.manual_seed(derive_seed(self.spec.hash, "order", epoch))
        idx = self.data.train_idx
        subset = self.method.train_subset()
        if subset is not None:  # the method's active set (e.g. a confident set), within the split
            idx = idx[subset.to(idx.device)[idx]]
            if idx.numel() == 0:
                raise RuntimeError(f"{self.spec.method} selected no training samples for epoch {epoch + 1}")
        order = idx[torch.randperm(idx.shape[0], generator=g).to(idx.device)]
        bs = self.recipe.batch_size
        batches = list(order.split(bs))
        if len(batches) > 1 and batches[-1].shape[0] == 1:
            batches.pop()
        return batches

    def training_batches(self, epoch: int, augment_gen: torch.Generator | None) -> Iterator[Batch]:
        """This epoch's batches: gathered from the device-resident images in the seeded order, or,
        for a streamed dataset, decoded in its epoch plan's order (the stream crops and flips, so
        the trainer's pad-4 crop is skipped; labels are gathered by the stream's indices)."""
        data = self.data
        if data.train_stream is None:
            for index in self.batch_order(epoch):
                yield Batch(data.train_input(index, augment_gen), data.noisy[index], index)
            return
        if self.method.train_subset() is not None:  # the stream plans its own epochs over every image
            raise BenchError(f"{self.spec.method} trains on a subset of the samples each epoch, which a streamed "
                             f"dataset ({self.spec.dataset}) does not support; use an in-memory dataset")
        stream, batch_size = data.train_stream, self.recipe.batch_size
        seed = derive_seed(self.spec.hash, "stream")
        single_left = stream.num_samples % batch_size == 1  # a batch of one cannot train BatchNorm
        for images, index in stream.batches(epoch, seed, batch_size, data.device, drop_last=single_left):
            yield Batch(data.to_input(images), data.noisy[index], index)

    def train_epoch(self, epoch: int, max_steps: int | None = None) -> dict[str, float]:
        """One epoch of steps and its metrics (one host sync, at the end).  ``max_steps`` stops
        after that many steps: `bench speed` times the real step this way."""
        data, method = self.data, self.method
        method.train()
        meter = EpochMeter(data)
        augment_gen = self.generator("augment", epoch) if data.augment else None
        for batch in self.training_batches(epoch, augment_gen):
            index = batch.index
            with _autocast(data.device):
                out = method.train_step(batch, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            self.optimizer.step()
            meter.add(out, index)
            if meter.steps == max_steps:
                break
        return meter.read()

    def evaluate(self) -> dict[str, float]:
        data, method = self.data, self.method
        method.eval()
        if data.test_stream is not None:
            return self.evaluate_stream()
        test_logits = predict_logits(method.predict, data, data.test_images)
        results: dict[str, Tensor] = {"test_acc": accuracy(test_logits, data.test_labels)}
        # Per true class too: class-dependent noise (pair, asym) hurts some classes, not all.
        per_class = per_class_accuracy(*per_class_hits(test_logits, data.test_labels, self.num_classes))
        extra_logits: dict[str, list[Tensor]] = {}
        with torch.inference_mode():
            for start in range(0, data.test_images.shape[0], EVAL_BATCH):
                with _autocast(data.device):
                    for name, lg in method.predict_extra(data.to_input(data.test_images[start:start + EVAL_BATCH])).items():
                        extra_logits.setdefault(name, []).append(lg.float())
        for name, chunks in extra_logits.items():
            results[f"test_acc_{name}"] = accuracy(torch.cat(chunks), data.test_labels)
        if data.val_idx.numel() > 0:
            val_logits = predict_logits(method.predict, data, data.images, data.val_idx)
            val_labels = data.noisy[data.val_idx]
            results["val_acc"] = accuracy(val_logits, val_labels)
            results["val_balanced_acc"] = balanced_accuracy(val_logits, val_labels, self.num_classes)
        keys = list(results)
        return split_per_class(torch.cat([torch.stack([results[k] for k in keys]), per_class]).tolist(), len(keys), keys)

    @torch.inference_mode()
    def evaluate_stream(self) -> dict[str, float]:
        """Test accuracy over a streamed test set: one decoding pass serves every network."""
        data, method = self.data, self.method
        correct: dict[str, Tensor] = {}
        class_hits = class_counts = torch.zeros(self.num_classes, device=data.device)
        for images, index in data.test_stream.batches(0, 0, STREAM_EVAL_BATCH, data.device):
            x, labels = data.to_input(images), data.test_labels[index]
            with _autocast(data.device):
                logits = {"test_acc": method.predict(x),
                          **{f"test_acc_{name}": lg for name, lg in method.predict_extra(x).items()}}
            for key, lg in logits.items():
                hits = (lg.argmax(dim=1) == labels).sum()
                correct[key] = correct[key] + hits if key in correct else hits
            batch_hits, batch_counts = per_class_hits(logits["test_acc"], labels, self.num_classes)
            class_hits, class_counts = class_hits + batch_hits, class_counts + batch_counts
        keys = list(correct)
        total = max(data.test_stream.num_samples, 1)
        scalars = torch.stack([correct[k] for k in keys]).float() / total
        return split_per_class(torch.cat([scalars, per_class_accuracy(class_hits, class_counts)]).tolist(), len(keys), keys)

    def state_dict(self, epoch: int) -> dict:
        return {"epoch": epoch, "method": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "spec_hash": self.spec.hash}

    def load_state_dict(self, state: dict) -> int:
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["epoch"])

    def resume_point(self) -> int:
        """Epochs already done according to the checkpoint (0 when starting afresh)."""
        if self.trial is None or not self.trial.checkpoint_file.exists():
            return 0
        try:
            state = torch.load(self.trial.checkpoint_file, map_location=self.data.device, weights_only=False)
        except Exception:  # an unreadable checkpoint: start over rather than trust it
            state = None
        if state is None or state.get("spec_hash") != self.spec.hash:
            self.trial.keep_metrics_through(0)  # starting over: the old lines would repeat epochs
            return 0
        done_epochs = self.load_state_dict(state)
        self.trial.keep_metrics_through(done_epochs)
        return done_epochs

    def run(self, start_epoch: int = 0) -> list[dict]:
        """Train epochs start_epoch+1 .. E (metrics lines are numbered from 1)."""
        progress = None
        if self.show_progress:
            from tqdm import tqdm

            progress = tqdm(total=self.max_epochs, initial=start_epoch, desc=self.spec.label(),
                            leave=False, file=sys.stdout, dynamic_ncols=True)
        lines = []
        # A resumed trial whose method had already stopped itself trains no further.
        stop_reason = self.method.finished() if start_epoch > 0 else None
        epochs_done = start_epoch
        try:
            for epoch in range(start_epoch, self.max_epochs):
                if stop_reason:
                    break
                self.epoch = epoch
                started = time.perf_counter()
                self.hook_metrics = {}
                # The hook first: a method starting a new round resets its model and optimiser
                # there, and the lr below is set on the optimiser that will train.
                self.method.on_epoch_start(epoch, self.view)
                factor = self.method.lr_factor(epoch)
                if factor is None:
                    lr, beta1 = lr_and_beta1(self.recipe, epoch)
                else:  # the method's own per-round schedule on the protocol's base lr
                    lr, beta1 = self.recipe.lr * factor, self.recipe.momentum
                set_lr(self.optimizer, lr, beta1)
                round_number, phase = self.method.round_and_phase()
                line = {"epoch": epoch + 1, "lr": lr, "round": round_number, "phase": phase}
                line.update(self.train_epoch(epoch))
                if not math.isfinite(line["train_loss"]):
                    raise TrainingDiverged(f"non-finite training loss ({line['train_loss']}) in epoch {epoch + 1}")
                line.update(self.evaluate())
                self.validation = {k: line[k] for k in ("val_acc", "val_balanced_acc") if k in line}
                line.update(self.method.on_epoch_end(epoch, self.view))
                line.update(self.hook_metrics)
                line["seconds"] = time.perf_counter() - started
                stop_reason = self.method.finished()
                epochs_done = epoch + 1
                if self.trial is not None and epoch + 1 in self.feature_epochs:
                    save_feature_snapshot(self.view, self.data,
                                          self.trial.path / FEATURE_SNAPSHOT_NAME.format(epoch=epoch + 1), epoch + 1)
                if self.trial is not None:
                    # The metrics line first, then the checkpoint, written whole or not at all: a trial
                    # killed in between (SIGKILL, or submitit's preemption handler mid-save) resumes from
                    # the previous checkpoint, which drops the extra line and redoes the epoch -- no
                    # epoch lost or repeated, no half-written checkpoint.pt.
                    self.trial.append_metrics(line)
                    last = epoch + 1 == self.max_epochs or stop_reason
                    if (epoch + 1) % self.checkpoint_every == 0 or last:
                        buffer = io.BytesIO()
                        torch.save(self.state_dict(epoch + 1), buffer)
                        atomic_write_bytes(self.trial.checkpoint_file, buffer.getvalue())
                lines.append(line)
                if progress is not None:
                    progress.set_postfix(test_acc=f"{line['test_acc']:.3f}")
                    progress.update(1)
        finally:
            if progress is not None:
                progress.close()
        self.end_note = self._end_note(epochs_done, stop_reason)
        if self.end_note:
            print(f"{self.spec.label()}: {self.end_note}", flush=True)
        return lines

    def _end_note(self, epochs_done: int, stop_reason: str | None) -> str | None:
        """Say why a trial with its own stopping rule or epoch budget ended where it did."""
        if stop_reason and epochs_done < self.max_epochs:
            return f"stopped early at epoch {epochs_done} of its {self.max_epochs}-epoch budget: {stop_reason}"
        if stop_reason:
            return f"finished at epoch {epochs_done}, the last of its budget: {stop_reason}"
        has_own_rule = type(self.method).finished is not Method.finished
        if (has_own_rule or self.max_epochs != self.recipe.epochs) and epochs_done == self.max_epochs:
            return (f"stopped at its epoch budget ({self.max_epochs} epochs, the protocol's {self.recipe.epochs} "
                    f"x {self.max_epochs / self.recipe.epochs:g}) before its own stopping rule ended it")
        return None


def summarize(lines: list[dict], last_k: int = 10) -> dict:
    """Best (highest test accuracy over epochs) and Last (mean over the last ``last_k`` epochs)."""
    accs = [m["test_acc"] for m in lines]
    if not accs:
        return {"best": float("nan"), "best_epoch": 0, "last": float("nan"), "epochs": 0}
    best_i = int(np.argmax(accs))
    return {"best": accs[best_i], "best_epoch": lines[best_i]["epoch"],
            "last": float(np.mean(accs[-last_k:])), "epochs": len(accs)}


def stream_and_weights_record(setup: TrialSetup) -> dict:
    """For spec.json: a streamed dataset's images per epoch (Clothing1M: a 32,000-image
    subsample of 1M), and the --pretrained file's digest (the hash holds only its path)."""
    import hashlib

    record = {}
    if setup.data.train_stream is not None:
        record["samples_per_epoch"] = setup.data.train_stream.num_samples
    if setup.spec.pretrained:
        digest = hashlib.sha256()
        with open(setup.spec.pretrained, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        record["pretrained"] = {"path": setup.spec.pretrained, "sha256": digest.hexdigest()}
    return record


def spec_record(setup: TrialSetup) -> dict:
    """spec.json: the spec plus what it resolved to (for provenance; not part of the hash)."""
    import dataclasses

    return {
        "spec": setup.spec.to_json(),
        "hash": setup.spec.hash,
        "recipe": setup.recipe.to_json(),
        "hparams": dataclasses.asdict(setup.method.hparams),
        "noise": setup.noisy.as_json(),
        "num_train": int(setup.data.train_idx.numel()),
        "num_val": int(setup.data.val_idx.numel()),
        **stream_and_weights_record(setup),
        "epoch_budget": setup.method.epoch_budget(setup.recipe.epochs),
        "device": str(setup.data.device),
        "torch": torch.__version__,
    }


def run_trial(spec: TrialSpec, results_root, *, device: str | torch.device | None = None, data_root=None,
              show_progress: bool = False, checkpoint_every: int = 1, feature_epochs: tuple[int, ...] = ()) -> dict:
    """Run (or resume) one trial into the store and return its summary.

    ``feature_epochs``: 1-based epochs after whose evaluation the training set's penultimate
    features are saved (features_e{E}.npz); they are diagnostics and not part of the spec.

    A trial that raises is recorded as failed (failed.json with the traceback) and its
    summary says so; the caller's sweep goes on.  KeyboardInterrupt leaves it incomplete.
    """
    store = TrialStore(results_root)
    trial = store.trial(spec)
    if trial.state == "done":
        return {**trial.read_done(), "skipped": True}
    started = time.perf_counter()
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    try:
        setup = setup_trial(spec, torch_device, data_root)
        resumable = trial.state == "incomplete" and trial.checkpoint_file.exists()
        trial.start(spec_record(setup), fresh=not resumable)
        trainer = Trainer(setup, trial, show_progress=show_progress, checkpoint_every=checkpoint_every,
                          feature_epochs=feature_epochs)
        start_epoch = trainer.resume_point() if resumable else 0
        trainer.run(start_epoch)
        summary = {**summarize(trial.read_metrics()), "seconds": time.perf_counter() - started,
                   "resumed_from": start_epoch}
        if trainer.end_note:
            summary["end_note"] = trainer.end_note
        trial.mark_done(summary)
        return summary
    except Exception as exc:  # noqa: BLE001 -- a failing trial is recorded, the sweep goes on
        trial.path.mkdir(parents=True, exist_ok=True)
        if not trial.spec_file.exists():  # failed before its record was written: keep it findable
            atomic_write_json(trial.spec_file, {"spec": spec.to_json(), "hash": spec.hash})
        trial.mark_failed(f"{type(exc).__name__}: {exc}".splitlines()[0], traceback.format_exc())
        return {"state": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                "seconds": time.perf_counter() - started}
