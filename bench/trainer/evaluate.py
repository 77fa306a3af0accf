"""Evaluation: logits in large batches, accuracy overall and per class, read once per epoch."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from noisybench.bench.trainer.data import DeviceData
from noisybench.methods.base import Method

EVAL_BATCH = 1024
# Streamed datasets' 224x224 images: 256 of them are 150 MB as floats (1024 would be 600 MB).
STREAM_EVAL_BATCH = 256


@torch.inference_mode()
def predict_logits(fn: Callable[[Tensor], Tensor], data: DeviceData, images: Tensor,
                   index: Tensor | None = None, batch: int = EVAL_BATCH) -> Tensor:
    """Logits for ``images[index]`` in large batches (fp32 result)."""
    n = images.shape[0] if index is None else index.shape[0]
    outs = []
    for start in range(0, n, batch):
        chunk = images[start:start + batch] if index is None else images[index[start:start + batch]]
        with data.arithmetic.autocast(data.device):
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
        with data.arithmetic.autocast(data.device):
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



def evaluate_in_memory(method: Method, data: DeviceData, num_classes: int) -> dict[str, float]:
    """Test accuracy (overall, per class, of every network the method reports) and the noisy
    validation split's accuracy, read with one host sync."""
    test_logits = predict_logits(method.predict, data, data.test_images)
    results: dict[str, Tensor] = {"test_acc": accuracy(test_logits, data.test_labels)}
    # Per true class too: class-dependent noise (pair, asym) hurts some classes, not all.
    per_class = per_class_accuracy(*per_class_hits(test_logits, data.test_labels, num_classes))
    extra_logits: dict[str, list[Tensor]] = {}
    with torch.inference_mode():
        for start in range(0, data.test_images.shape[0], EVAL_BATCH):
            with data.arithmetic.autocast(data.device):
                for name, lg in method.predict_extra(data.to_input(data.test_images[start:start + EVAL_BATCH])).items():
                    extra_logits.setdefault(name, []).append(lg.float())
    for name, chunks in extra_logits.items():
        results[f"test_acc_{name}"] = accuracy(torch.cat(chunks), data.test_labels)
    if data.val_idx.numel() > 0:
        val_logits = predict_logits(method.predict, data, data.images, data.val_idx)
        val_labels = data.noisy[data.val_idx]
        results["val_acc"] = accuracy(val_logits, val_labels)
        results["val_balanced_acc"] = balanced_accuracy(val_logits, val_labels, num_classes)
    keys = list(results)
    return split_per_class(torch.cat([torch.stack([results[k] for k in keys]), per_class]).tolist(), len(keys), keys)


@torch.inference_mode()
def evaluate_stream(method: Method, data: DeviceData, num_classes: int) -> dict[str, float]:
    """Test accuracy over a streamed test set: one decoding pass serves every network."""
    correct: dict[str, Tensor] = {}
    class_hits = class_counts = torch.zeros(num_classes, device=data.device)
    for images, index in data.test_stream.batches(0, 0, STREAM_EVAL_BATCH, data.device):
        x, labels = data.to_input(images), data.test_labels[index]
        with data.arithmetic.autocast(data.device):
            logits = {"test_acc": method.predict(x),
                      **{f"test_acc_{name}": lg for name, lg in method.predict_extra(x).items()}}
        for key, lg in logits.items():
            hits = (lg.argmax(dim=1) == labels).sum()
            correct[key] = correct[key] + hits if key in correct else hits
        batch_hits, batch_counts = per_class_hits(logits["test_acc"], labels, num_classes)
        class_hits, class_counts = class_hits + batch_hits, class_counts + batch_counts
    keys = list(correct)
    total = max(data.test_stream.num_samples, 1)
    scalars = torch.stack([correct[k] for k in keys]).float() / total
    return split_per_class(torch.cat([scalars, per_class_accuracy(class_hits, class_counts)]).tolist(), len(keys), keys)
