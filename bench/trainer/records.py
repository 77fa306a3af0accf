"""What a trial directory records besides its metrics: spec.json's provenance and feature snapshots."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import torch

from noisybench.bench.trainer.data import DeviceData
from noisybench.bench.trainer.setup import TrialSetup
from noisybench.core.provenance import provenance
from noisybench.methods.base import TrainerView
from noisybench.results.store import atomic_write_bytes


def save_feature_snapshot(view: TrainerView, data: DeviceData, path, epoch: int) -> None:
    """The training set's penultimate features after ``epoch`` with its clean, noisy and
    predicted labels (the LEND paper's Fig. 1 material), written atomically.

    Features are stored as float16: t-SNE needs no more precision, and CIFAR's 50,000 x 512
    features take 50 MB instead of 100.  ``predicted`` is the argmax of the same network's logits.
    """
    features, logits = view.embed_train()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, epoch=np.int64(epoch), features=features.cpu().numpy().astype(np.float16),
        clean=data.clean.cpu().numpy(), noisy=data.noisy.cpu().numpy(),
        predicted=logits.argmax(dim=1).cpu().numpy(), has_clean=np.bool_(data.has_clean),
        in_train_split=np.isin(np.arange(data.num_train), data.train_idx.cpu().numpy()),
    )
    atomic_write_bytes(path, buffer.getvalue())


def stream_and_weights_record(setup: TrialSetup) -> dict:
    """For spec.json: a streamed dataset's images per epoch (Clothing1M: a 32,000-image
    subsample of 1M), and the --pretrained file's digest (the hash holds only its path)."""
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
    """spec.json: the resolved trial (bench/trainer/resolve.py: what decides its numbers), the noisy
    labels it drew, and the run's provenance (neither is part of the hash)."""
    return {
        **setup.trial.record(),
        # Its labels_sha256 fingerprints the noisy labels trained on, for every kind of noise.
        "noise": setup.noisy.as_json(),
        "num_train": int(setup.data.train_idx.numel()),
        "num_val": int(setup.data.val_idx.numel()),
        **stream_and_weights_record(setup),
        "epoch_budget": setup.trial.epoch_budget,
        "device": str(setup.data.device),
        "arithmetic": setup.data.arithmetic.to_json(),
        # On the CPU a sum split over another number of threads rounds differently: part of what
        # reproduces a trial (a resume pins it, bench/trainer/trial.py).
        "cpu_threads": torch.get_num_threads() if setup.data.device.type == "cpu" else None,
        "torch": torch.__version__,
        "noisybench": provenance(),
    }
