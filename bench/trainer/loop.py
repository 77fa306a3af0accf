"""The trainer loop: epochs of a method's steps over on-device batches, evaluation, metrics,
checkpoints, and resuming from them.

Written for the GPU (airbench-style) and correct on the CPU: no host sync inside the step
(losses and diagnostics accumulate in device tensors, read once per epoch), and every source
of randomness is a Generator seeded from the spec (and the epoch), so an interrupted trial
resumed from its checkpoint reproduces the uninterrupted one.
"""
from __future__ import annotations

import io
import itertools
import math
import sys
import time
from typing import Iterator

import torch
from torch import Tensor

from noisybench.bench.trainer.evaluate import evaluate_in_memory, evaluate_stream
from noisybench.bench.trainer.meter import EpochMeter
from noisybench.bench.trainer.optim import build_optimizer, lr_and_beta1, set_lr
from noisybench.bench.trainer.passes import (
    CompanionBatches,
    OptimizerSet,
    epoch_batches,
    group_parameters,
    optimizer_groups,
    pass_batches,
    subset_indices,
)
from noisybench.bench.trainer.records import save_feature_snapshot
from noisybench.bench.trainer.setup import TrialSetup
from noisybench.bench.trainer.view import TrainerViewImpl
from noisybench.core.errors import BenchError
from noisybench.core.layout import FEATURE_SNAPSHOT_NAME
from noisybench.datasets.dataonly import NotDataOnly
from noisybench.methods.base import Batch, EpochPlan, TrainPass
from noisybench.results.checkpoints import check_data_only, read_checkpoint_payload
from noisybench.results.store import TrialDir, read_checked


class TrainingDiverged(RuntimeError):
    """A non-finite training loss: the trial fails visibly instead of training on NaNs."""


PLAIN_PASS = TrainPass()  # a plain epoch's pass: the whole training split, every optimiser


class Trainer:
    def __init__(self, setup: TrialSetup, trial: TrialDir | None = None, show_progress: bool = False,
                 checkpoint_every: int = 1, feature_epochs: tuple[int, ...] = ()):
        self.setup = setup
        self.spec, self.recipe, self.data, self.method = setup.spec, setup.recipe, setup.data, setup.method
        self.trial = trial
        self.show_progress = show_progress
        self.checkpoint_every = checkpoint_every
        self.feature_epochs = frozenset(feature_epochs)  # 1-based epochs after which to snapshot features
        self.optimizers = self.build_optimizers()
        if self.data.arithmetic.autotune:
            # Every step has the same shapes (the last batch of an epoch aside), so cuDNN's
            # autotuner picks each convolution's fastest kernel once.  GPU training is not
            # bitwise reproducible anyway (atomic adds in the backward), so nothing is lost.
            torch.backends.cudnn.benchmark = True
        self.view = TrainerViewImpl(self)
        self.epoch = 0
        self.num_classes = setup.dataset.num_classes
        # Methods whose rounds vary in length (Me-Momentum) ask for more epochs than the protocol's;
        # the trainer never runs past this budget.
        self.max_epochs = setup.trial.epoch_budget
        if self.max_epochs < 1:
            raise ValueError(f"{self.spec.method}: epoch budget {self.max_epochs} < 1")
        self.validation: dict[str, float] = {}  # this epoch's noisy-validation accuracy, for hooks
        self.hook_metrics: dict[str, float] = {}  # what hooks reported through the view this epoch
        # The method's plan of the epoch begun last (plan_epoch), which train_epoch trains, and its lr.
        self.plan: EpochPlan | None = None
        self.planned_epoch: int | None = None
        self.epoch_lr: float | None = None
        self.end_note: str | None = None  # why training ended before the budget, or that it hit it

    def build_optimizers(self) -> list[torch.optim.Optimizer]:
        """The method's optimiser, or one per network where it declares so, each by the protocol's recipe."""
        return [build_optimizer(self.recipe, params, self.data.arithmetic.fused)
                for params in group_parameters(optimizer_groups(self.method))]

    @property
    def optimizer(self):
        """The method's one optimiser, or all of them as one OptimizerSet when it has several."""
        return self.optimizers[0] if len(self.optimizers) == 1 else OptimizerSet(self.optimizers)

    def generator(self, purpose: str, *stream) -> torch.Generator:
        """A device Generator for a stream shared by every method of (dataset, model, seed)."""
        g = torch.Generator(device=self.data.device)
        g.manual_seed(self.setup.shared_seed(purpose, *stream))
        return g

    def batch_order(self, epoch: int, train_pass: TrainPass = PLAIN_PASS, pass_index: int = 0) -> list[Tensor]:
        """This epoch's shuffled batches of training indices, cut as the recipe says (epoch_batches).
        A pass with its own subset draws from it (no batches when it is empty) in batches of its own
        size; the first pass of an epoch draws the order a plain epoch draws."""
        g = torch.Generator()
        g.manual_seed(self.setup.shared_seed("order", epoch, *(("pass", pass_index) if pass_index else ())))
        idx = self.data.train_idx
        if train_pass.subset is not None:  # the pass's own set (a confident set, a division), within the split
            idx = subset_indices(idx, train_pass.subset)
            if idx.numel() == 0:
                return []
        order = idx[torch.randperm(idx.shape[0], generator=g).to(idx.device)]
        return epoch_batches(order, train_pass.batch_size or self.recipe.batch_size, self.recipe.drop_last,
                             self.recipe.max_steps_per_epoch)

    def companion_batches(self, epoch: int, train_pass: TrainPass, pass_index: int) -> CompanionBatches | None:
        """The pass's companion set as endless batches of the pass's size (None: it has none)."""
        if train_pass.companion is None:
            return None
        idx = subset_indices(self.data.train_idx, train_pass.companion)
        if idx.numel() == 0:
            return None
        batch_size = train_pass.batch_size or self.recipe.batch_size
        return CompanionBatches(idx, lambda order: epoch_batches(order, batch_size),
                                lambda cycle: self.setup.shared_seed("companion", epoch, pass_index, cycle))

    def training_batches(self, epoch: int, augment_gen: torch.Generator | None,
                         train_pass: TrainPass = PLAIN_PASS, pass_index: int = 0) -> Iterator[Batch]:
        """This epoch's (or this pass's) batches: gathered from the device-resident images in the
        seeded order, or, for a streamed dataset, decoded in its epoch plan's order (the stream crops
        and flips, so the trainer's pad-4 crop is skipped; labels are gathered by the stream's indices)."""
        data = self.data
        if data.train_stream is None:
            yield from pass_batches(train_pass, self.batch_order(epoch, train_pass, pass_index),
                                    self.companion_batches(epoch, train_pass, pass_index),
                                    lambda index: data.train_input(index, augment_gen), data.noisy,
                                    augmenting=augment_gen is not None)
            return
        if train_pass.subset is not None or train_pass.companion is not None:
            # The stream plans its own epochs over every image.
            raise BenchError(f"{self.spec.method} trains on a subset of the samples each epoch, which a streamed "
                             f"dataset ({self.spec.dataset}) does not support; use an in-memory dataset")
        stream, batch_size = data.train_stream, train_pass.batch_size or self.recipe.batch_size
        seed = self.setup.shared_seed("stream", *(("pass", pass_index) if pass_index else ()))
        single_left = stream.num_samples % batch_size == 1  # a batch of one cannot train BatchNorm
        batches = stream.batches(epoch, seed, batch_size, data.device, drop_last=single_left or self.recipe.drop_last)
        for step, (images, index) in enumerate(itertools.islice(batches, self.recipe.max_steps_per_epoch)):
            yield Batch(data.to_input(images), data.noisy[index], index, net=train_pass.net, step=step)

    def plan_epoch(self, epoch: int) -> EpochPlan:
        """Begin ``epoch``: the method's plan of it (whatever the method does before an epoch's steps
        happens here), kept for train_epoch, and, for a plan that trains, the epoch's lr set on the
        optimisers -- after the plan, since a method starting a round builds new ones in it."""
        self.epoch = epoch
        self.hook_metrics = {}
        plan = self.method.epoch_plan(epoch, self.view)
        if not isinstance(plan, EpochPlan):
            raise TypeError(f"{self.spec.method}.epoch_plan returned {type(plan).__name__}, not an EpochPlan")
        self.plan, self.planned_epoch = plan, epoch
        if plan.finished is None:
            self.epoch_lr, beta1 = lr_and_beta1(self.recipe, epoch, plan.lr_factor)
            for optimizer in self.optimizers:
                set_lr(optimizer, self.epoch_lr, beta1)
        return plan

    def train_epoch(self, epoch: int, max_steps: int | None = None) -> dict[str, float]:
        """One epoch of steps, as the method planned it, and its metrics (one host sync, at the end);
        an epoch not begun yet (plan_epoch) is begun here.  ``max_steps`` stops after that many
        steps: `bench speed` and the tests run the real step this way."""
        plan = self.plan if self.planned_epoch == epoch else self.plan_epoch(epoch)
        if plan.finished is not None:
            raise RuntimeError(f"{self.spec.method} has finished ({plan.finished}); epoch {epoch + 1} trains nothing")
        data, method = self.data, self.method
        method.train()
        meter = EpochMeter(data)
        augment_gen = self.generator("augment", epoch) if data.augment else None
        for pass_index, train_pass in enumerate(plan.passes):
            # A pass over one network steps that network's optimiser where each has its own; else every one.
            own = train_pass.net is not None and method.optimizer_per_network
            optimizers = [self.optimizers[train_pass.net]] if own else self.optimizers
            for batch in self.training_batches(epoch, augment_gen, train_pass, pass_index):
                index = batch.index
                with data.arithmetic.autocast(data.device):
                    out = method.train_step(batch, epoch)
                for optimizer in optimizers:
                    optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                for optimizer in optimizers:
                    optimizer.step()
                meter.add(out, index)
                if meter.steps == max_steps:
                    return meter.read()
        if meter.steps == 0:  # every pass's subset was empty
            raise RuntimeError(f"{self.spec.method} selected no training samples for epoch {epoch + 1}")
        return meter.read()

    def save_checkpoint(self, epochs_done: int) -> None:
        """The trial's state after ``epochs_done`` epochs, written whole or not at all."""
        state = self.state_dict(epochs_done)
        check_data_only(state, f"{self.spec.method}'s checkpoint")
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.trial.save_checkpoint(buffer.getvalue(), epochs_done)

    def evaluate(self) -> dict[str, float]:
        """This epoch's test accuracy (overall, per class, of every network) and noisy-validation accuracy."""
        self.method.eval()
        if self.data.test_stream is not None:
            return evaluate_stream(self.method, self.data, self.num_classes)
        return evaluate_in_memory(self.method, self.data, self.num_classes)

    def state_dict(self, epoch: int) -> dict:
        # One optimiser: its state under "optimizer", as always; several: all of them, in group order.
        optimizers = ({"optimizer": self.optimizers[0].state_dict()} if len(self.optimizers) == 1
                      else {"optimizers": [o.state_dict() for o in self.optimizers]})
        return {"epoch": epoch, "method": self.method.state_dict(), **optimizers, "spec_hash": self.spec.hash}

    def load_state_dict(self, state: dict) -> int:
        self.method.load_state_dict(state["method"])
        states = state["optimizers"] if "optimizers" in state else [state["optimizer"]]
        if len(states) != len(self.optimizers):
            raise ValueError(f"the checkpoint holds {len(states)} optimiser states and {self.spec.method} has "
                             f"{len(self.optimizers)} optimiser groups")
        for optimizer, optimizer_state in zip(self.optimizers, states):
            optimizer.load_state_dict(optimizer_state)
        return int(state["epoch"])

    def resume_point(self) -> int:
        """Epochs already done according to the newest good checkpoint (0: start afresh).

        A checkpoint is used only when its checksum holds, it belongs to this spec, and the
        metrics log has every epoch up to it (the log is then cut back to it); otherwise the one
        before it is tried, and failing both the trial restarts from scratch -- never from a
        damaged state, and never with a gap or a repeat in its metrics."""
        if self.trial is None:
            return 0
        for path in self.trial.checkpoints():
            payload = read_checked(path)
            state = None
            if payload is not None:
                try:
                    state = read_checkpoint_payload(payload, self.data.device)
                except NotDataOnly as refusal:
                    # The checksum is no defence (anyone can recompute it); the unpickler is.
                    print(f"{self.spec.label()}: {path.name} is not a data-only checkpoint (it {refusal}); "
                          "refused before anything in it ran; not loaded", flush=True)
                    continue
                except Exception:  # noqa: BLE001 -- a checksum-valid file torch cannot read is damaged too
                    state = None
            if not isinstance(state, dict) or state.get("spec_hash") != self.spec.hash:
                print(f"{self.spec.label()}: {path.name} is damaged or not this trial's; not loaded", flush=True)
                continue
            epoch = int(state["epoch"])
            if not self.trial.keep_metrics_through(epoch):
                print(f"{self.spec.label()}: metrics.jsonl lacks epochs up to {path.name}'s {epoch}; "
                      "not resumed from it", flush=True)
                continue
            if path != self.trial.checkpoint_file:
                print(f"{self.spec.label()}: resumed from the last good state, {path.name} (epoch {epoch})", flush=True)
            return self.load_state_dict(state)
        self.trial.keep_metrics_through(0)  # starting over: the old lines would repeat epochs
        self.trial.drop_checkpoints()
        return 0

    def run(self, start_epoch: int = 0) -> list[dict]:
        """Train epochs start_epoch+1 .. E (metrics lines are numbered from 1)."""
        progress = None
        if self.show_progress:
            from tqdm import tqdm

            progress = tqdm(total=self.max_epochs, initial=start_epoch, desc=self.spec.label(),
                            leave=False, file=sys.stdout, dynamic_ncols=True)
        lines = []
        stop_reason = None
        epochs_done = start_epoch
        try:
            for epoch in range(start_epoch, self.max_epochs):
                started = time.perf_counter()
                plan = self.plan_epoch(epoch)
                if plan.finished is not None:  # the method's rule ended it (before a resume, too): no more epochs
                    stop_reason = plan.finished
                    break
                line = {"epoch": epoch + 1, "lr": self.epoch_lr, "round": plan.round, "phase": plan.phase}
                line.update(self.train_epoch(epoch))
                if not math.isfinite(line["train_loss"]):
                    raise TrainingDiverged(f"non-finite training loss ({line['train_loss']}) in epoch {epoch + 1}")
                line.update(self.evaluate())
                self.validation = {k: line[k] for k in ("val_acc", "val_balanced_acc") if k in line}
                line.update(self.method.on_epoch_end(epoch, self.view))
                line.update(self.hook_metrics)
                line["seconds"] = time.perf_counter() - started
                epochs_done = epoch + 1
                if self.trial is not None and epoch + 1 in self.feature_epochs:
                    self.trial.check_fence()
                    save_feature_snapshot(self.view, self.data,
                                          self.trial.path / FEATURE_SNAPSHOT_NAME.format(epoch=epoch + 1), epoch + 1)
                if self.trial is not None:
                    # The metrics line first, then the checkpoint, written whole or not at all: a trial
                    # killed in between (SIGKILL, or submitit's preemption handler mid-save) resumes from
                    # the previous checkpoint, which drops the extra line and redoes the epoch -- no
                    # epoch lost or repeated, no half-written checkpoint.pt.
                    self.trial.append_metrics(line)
                    if (epoch + 1) % self.checkpoint_every == 0 or epoch + 1 == self.max_epochs:
                        self.save_checkpoint(epoch + 1)
                lines.append(line)
                if progress is not None:
                    progress.set_postfix(test_acc=f"{line['test_acc']:.3f}")
                    progress.update(1)
        finally:
            if progress is not None:
                progress.close()
        if stop_reason is not None and self.trial is not None and epochs_done > start_epoch \
                and epochs_done % self.checkpoint_every:
            # Its last epoch has no checkpoint: save the state that says it has finished, so that a
            # trial killed before done.json is written resumes into training nothing.
            self.save_checkpoint(epochs_done)
        if stop_reason is None and epochs_done == self.max_epochs and self.method.has_stopping_rule:
            # The budget ran out: the plan of the epoch past it says whether the method's own rule had
            # ended the trial there too (nothing is trained or written after it).
            stop_reason = self.plan_epoch(self.max_epochs).finished
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
        if (self.method.has_stopping_rule or self.max_epochs != self.recipe.epochs) and epochs_done == self.max_epochs:
            return (f"stopped at its epoch budget ({self.max_epochs} epochs, the protocol's {self.recipe.epochs} "
                    f"x {self.max_epochs / self.recipe.epochs:g}) before its own stopping rule ended it")
        return None
