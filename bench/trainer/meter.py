"""An epoch's metrics, summed on the device during its steps and read with one host sync."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from noisybench.methods.base import StepOutput

if TYPE_CHECKING:
    from noisybench.bench.trainer.data import DeviceData


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
