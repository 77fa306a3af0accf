"""The two loops `bench speed` times: the shared trainer's real step, and the papers' DataLoader loop."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from noisybench.bench.speed.options import SpeedOptions
from noisybench.bench.speed.timing import count_host_syncs, synchronize, timed
from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec


class TrainerLoop:
    """One method's trial, ready to run steps of one epoch through ``Trainer.train_epoch``."""

    kind = "trainer"

    def __init__(self, method: str, options: SpeedOptions, dataset, device: torch.device, seed: int = 0):
        from noisybench.bench.trainer.loop import Trainer
        from noisybench.bench.trainer.setup import setup_trial

        self.name = method
        self.device = device
        spec = TrialSpec(dataset=options.shape, method=method, noise=options.noise, seed=seed,
                         protocol=options.protocol, model=options.model, batch_size=options.batch_size,
                         precision=options.precision)
        self.trainer = Trainer(setup_trial(spec, device, dataset=dataset, memory_format=options.memory_format,
                                           fused=options.fused, autotune=options.autotune))
        if options.compile:
            # In place (Module.compile): state_dict keys, hence checkpoints, stay as in eager mode.
            # Compiling happens in the warm-up steps and the first evaluation, both untimed.
            for network in self.trainer.method.networks():
                network.compile(mode=None if options.compile == "default" else options.compile)
        self.recipe = self.trainer.recipe
        self.batch_size = self.recipe.batch_size
        # The timed epoch: past every method's warm-up by default (LEND's 10 epochs of plain
        # labels, Co-teaching's forget-rate ramp), so its steps are the ones most epochs run.
        if options.epoch >= self.recipe.epochs:
            raise BenchError(f"--epoch {options.epoch}: a {method} trial of this protocol has epochs 0.."
                             f"{self.recipe.epochs - 1}; pick one of them")
        self.epoch = options.epoch
        # What Trainer.run does before an epoch's steps: the method's plan of it (a method may build
        # state there) and the epoch's lr.  Its time is reported apart: a phase method's plan
        # (self-learning's prototype election, GCE's pruning pass) embeds or predicts the whole
        # training set, on some epochs only.
        synchronize(device)
        started = time.perf_counter()
        plan = self.trainer.plan_epoch(self.epoch)
        synchronize(device)
        self.hook_seconds = time.perf_counter() - started
        self.samples_per_epoch = int(self.trainer.data.train_idx.numel())
        # The sizes of the planned epoch's batches, pass after pass, counted here so the timed steps
        # do not pay for counting (train_epoch below trains this plan, not a new one).
        self.batch_sizes = [int(b.shape[0]) for i, train_pass in enumerate(plan.passes)
                            for b in self.trainer.batch_order(self.epoch, train_pass, i)]
        self.num_val = int(self.trainer.data.val_idx.numel())
        self.epochs = int(getattr(self.trainer, "max_epochs", self.recipe.epochs))
        self.host_syncs_per_step: float | None = None

    def train(self, steps: int) -> int:
        """Run ``steps`` steps of the timed epoch (its order again from the start when more steps
        are asked than it has, so a method never sees an epoch past its schedule); images seen."""
        done = images = 0
        while done < steps:
            chunk = min(steps - done, len(self.batch_sizes))
            self.trainer.train_epoch(self.epoch, max_steps=chunk)
            done += chunk
            images += sum(self.batch_sizes[:chunk])
        return images

    def warm_up(self, steps: int) -> None:
        if self.device.type == "cuda" and steps >= 4:
            # The first steps pick cuDNN's kernels (which syncs); then count the syncs of one
            # step and of two, each call with its epoch's own (the batch order upload, the one
            # metrics read), so the difference is what one step adds: a step that syncs stalls
            # the GPU's queue every time.
            self.train(steps - 3)
            one = count_host_syncs(self.device, lambda: self.train(1))
            two = count_host_syncs(self.device, lambda: self.train(2))
            self.host_syncs_per_step = float(two - one)
        elif steps > 0:
            self.train(steps)
        synchronize(self.device)

    def time_train(self, steps: int) -> tuple[float, int]:
        return timed(self.device, lambda: self.train(steps))

    def time_eval(self) -> tuple[float, int]:
        seconds, _ = timed(self.device, self.trainer.evaluate)
        return seconds, int(self.trainer.data.test_images.shape[0]) + self.num_val


class PerSampleTransformDataset(torch.utils.data.Dataset):
    """Images one at a time through torchvision transforms, as the papers' CIFAR datasets do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def reference_transforms(mean: torch.Tensor, std: torch.Tensor, augment: bool):
    import torchvision.transforms as T

    # On uint8 tensors rather than PIL images: the same crops and flips, and cheaper than
    # ToTensor() on PIL, so the reference is if anything faster than the papers' code.
    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    steps += [T.ConvertImageDtype(torch.float32), T.Normalize(mean.tolist(), std.tolist())]
    return T.Compose(steps)


class ReferenceLoop:
    """Plain training of the protocol's model: DataLoader, per-sample transforms, fp32, .item()."""

    kind = "reference"

    def __init__(self, options: SpeedOptions, dataset, device: torch.device, mean: torch.Tensor,
                 std: torch.Tensor):
        from noisybench.bench.trainer.protocols import resolve_recipe
        from noisybench.methods.networks import build_model

        self.device = device
        self.workers = options.reference_workers
        recipe = resolve_recipe(options.protocol, options.shape, "standard", model=options.model,
                                batch_size=options.batch_size)
        self.recipe, self.batch_size = recipe, recipe.batch_size
        self.name = f"reference ({self.workers} DataLoader workers)"
        self.epochs = recipe.epochs
        self.samples_per_epoch = dataset.num_train
        self.num_val = 0
        self.host_syncs_per_step = None
        self.hook_seconds = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model = build_model(recipe.model, dataset.num_classes, dataset.image_shape).to(device)
        if recipe.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                             weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        images = torch.from_numpy(dataset.train_images)
        labels = torch.from_numpy(dataset.train_labels)
        mean, std = mean.flatten().cpu(), std.flatten().cpu()
        train_set = PerSampleTransformDataset(images, labels, reference_transforms(mean, std, recipe.augment))
        test_set = PerSampleTransformDataset(torch.from_numpy(dataset.test_images),
                                             torch.from_numpy(dataset.test_labels),
                                             reference_transforms(mean, std, augment=False))
        shuffle_generator = torch.Generator().manual_seed(0)
        self.train_loader = torch.utils.data.DataLoader(train_set, batch_size=self.batch_size, shuffle=True,
                                                        num_workers=self.workers, generator=shuffle_generator)
        self.test_loader = torch.utils.data.DataLoader(test_set, batch_size=self.batch_size,
                                                       num_workers=self.workers)
        self.batches = self._endless_batches()

    def _endless_batches(self):
        while True:  # a new epoch restarts the workers, as in the papers' loops
            yield from self.train_loader

    def train(self, steps: int) -> int:
        self.model.train()
        images = 0
        running_loss = 0.0
        for _ in range(steps):
            x, y = next(self.batches)
            x, y = x.to(self.device), y.to(self.device)
            loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            running_loss += loss.item()  # the papers log every step, a host sync each time
            images += int(y.shape[0])
        return images

    def warm_up(self, steps: int) -> None:
        if steps > 0:
            self.train(steps)
        synchronize(self.device)

    def time_train(self, steps: int) -> tuple[float, int]:
        return timed(self.device, lambda: self.train(steps))

    def time_eval(self) -> tuple[float, int]:
        self.model.eval()
        seconds, _ = timed(self.device, self.evaluate)
        return seconds, len(self.test_loader.dataset)

    def evaluate(self) -> int:
        """Correct test predictions, counted with `.item()` per batch as the papers' scripts do."""
        correct = 0
        with torch.no_grad():
            for x, y in self.test_loader:
                x, y = x.to(self.device), y.to(self.device)
                correct += (self.model(x).argmax(dim=1) == y).sum().item()
        return correct
