"""What the trainer offers a method's epoch hooks (epoch_plan, on_epoch_end): the whole training set
embedded or predicted, the noisy labels, the validation accuracy, a fresh optimiser, whole-set
selections scored."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from noisybench.bench.trainer.evaluate import (
    EVAL_BATCH,
    accuracy,
    balanced_accuracy,
    predict_logits,
    stream_outputs,
)
from noisybench.bench.trainer.meter import selection_scores
from noisybench.methods.base import TrainerView

if TYPE_CHECKING:
    from noisybench.bench.trainer.loop import Trainer


class TrainerViewImpl(TrainerView):
    """The trainer as a method's epoch hooks see it (methods/base.py: TrainerView)."""

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
                seed = self._t.setup.shared_seed("hook-augment", self._t.epoch)
                return stream_outputs(lambda x: (method.predict(x),), data, stream, seed)[0]
            if not augment:
                return predict_logits(method.predict, data, data.images)
            g = self._t.generator("hook-augment", self._t.epoch)
            outs = []
            with torch.inference_mode():
                for start in range(0, data.images.shape[0], EVAL_BATCH):
                    idx = torch.arange(start, min(start + EVAL_BATCH, data.images.shape[0]), device=data.device)
                    with data.arithmetic.autocast(data.device):
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
                    with data.arithmetic.autocast(data.device):
                        lg, ft = network(data.to_input(data.images[start:start + EVAL_BATCH]), return_features=True)
                    logits.append(lg.float())
                    feats.append(ft.float())
        finally:
            method.train(was_training)
        return torch.cat(feats), torch.cat(logits)

    def map_train(self, fn) -> Tensor:
        """``fn`` over every training image, unaugmented, in eval mode: rows in sample order."""
        data, method = self._t.data, self._t.method
        was_training = method.training
        method.eval()
        try:
            if data.train_stream is not None:  # central crops, as the in-memory path is unaugmented
                return stream_outputs(lambda x: (fn(x),), data, data.train_stream.replace(augment=False))[0]
            return predict_logits(fn, data, data.images)
        finally:
            method.train(was_training)

    def reset_optimizer(self) -> None:
        """Fresh optimisers over the method's current networks (rounds that re-initialise)."""
        self._t.optimizers = self._t.build_optimizers()

    def validation_accuracy(self, augment: bool = False) -> dict[str, float]:
        data, method = self._t.data, self._t.method
        if not augment or not data.augment or data.val_idx.numel() == 0:
            return dict(self._t.validation)  # unaugmented: what evaluate() measured this epoch
        # Fresh crops and flips each epoch, from the trainer's seeded generator (as predict_train).
        g = self._t.generator("val-augment", self._t.epoch)
        was_training = method.training
        method.eval()
        try:
            outs = []
            with torch.inference_mode():
                for chunk in data.val_idx.split(EVAL_BATCH):
                    with data.arithmetic.autocast(data.device):
                        outs.append(method.predict(data.train_input(chunk, g)).float())
        finally:
            method.train(was_training)
        logits, labels = torch.cat(outs), data.noisy[data.val_idx]
        scores = torch.stack([accuracy(logits, labels), balanced_accuracy(logits, labels, self._t.num_classes)])
        val_acc, val_balanced_acc = scores.tolist()
        return {"val_acc": val_acc, "val_balanced_acc": val_balanced_acc}

    def report_selection(self, name: str, mask: Tensor) -> None:
        data = self._t.data
        weight = mask.detach().float()[data.train_idx]
        is_clean = data.is_clean[data.train_idx]
        self._t.hook_metrics.update(selection_scores(name, weight, is_clean, data.has_clean))
