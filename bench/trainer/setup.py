"""One trial's set-up: its data on the device, its noisy labels, its recipe and its method."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import noisybench.datasets as datasets
import noisybench.noise as noise
from noisybench.bench.trainer.arithmetic import Arithmetic
from noisybench.bench.trainer.data import DeviceData, split_validation
from noisybench.bench.trainer.protocols import Recipe
from noisybench.bench.trainer.resolve import ResolvedTrial, as_resolved
from noisybench.core.errors import BenchError
from noisybench.core.seeding import CURRENT_SEEDING, common_seed, derive_seed
from noisybench.core.spec import TrialSpec
from noisybench.methods import get_method
from noisybench.methods.base import Method, MethodContext
from noisybench.methods.networks import build_model
from noisybench.methods.networks.pretrained import load_pretrained, read_state_dict
from noisybench.methods.registry import check_trial_plugins


@dataclass
class TrialSetup:
    """Everything a trial needs before its first step (shared by run_trial and `bench speed`)."""

    trial: ResolvedTrial
    dataset: object
    noisy: object
    data: DeviceData
    method: Method

    @property
    def spec(self) -> TrialSpec:
        return self.trial.spec

    @property
    def recipe(self) -> Recipe:
        return self.trial.recipe

    def shared_seed(self, purpose: str, *stream: object) -> int:
        """The seed of a stream every method and hyperparameter value of (dataset, model, seed)
        shares -- batch order, augmentation -- so that a seed's rows differ by their methods only."""
        return common_seed(purpose, self.spec.dataset, self.recipe.model, self.spec.seed, *stream)


def setup_trial(trial: ResolvedTrial | TrialSpec, device: torch.device, data_root=None, dataset=None,
                memory_format: str | None = None, fused: bool | None = None,
                autotune: bool | None = None) -> TrialSetup:
    """Data, noisy labels and method of one resolved trial, on ``device``, computing with the
    spec's precision and the given run settings (each None: the device's default).  The recipe and
    hyperparameters are the resolved trial's (a bare TrialSpec, built by hand, is resolved once).

    ``dataset``: an in-memory Dataset to use instead of loading ``spec.dataset`` (`bench speed`
    times the real trial on synthetic data of a real dataset's shape this way).
    """
    spec = trial.spec if isinstance(trial, ResolvedTrial) else trial
    if spec.seeding != CURRENT_SEEDING:
        raise BenchError(f"{spec.label()} was made under seeding scheme {spec.seeding} (noisybench 0.1: from the spec "
                         f"hash), which this version no longer trains; rerun the sweep to train it under common "
                         f"random numbers (scheme {CURRENT_SEEDING}) in a new trial directory")
    stored = dataset is None  # a stored trial (`bench speed` brings its own data and stores nothing)
    if stored:
        dataset = datasets.load(spec.dataset, data_root)
    trial = as_resolved(trial, dataset)
    recipe = trial.recipe
    if stored:
        # The plugin versions in the spec (and its hash) must be the ones this process trains with.
        check_trial_plugins(spec.plugin, spec.method, spec.dataset, recipe.model)
    noisy = noise.apply_noise(noise.parse_noise(spec.noise), dataset, spec.seed, data_root=data_root)
    train_idx, val_idx = split_validation(len(noisy.labels), trial.validation_fraction,
                                          (spec.dataset, spec.noise, spec.seed))
    arithmetic = Arithmetic.resolve(device, spec.precision, memory_format, fused, autotune)
    data = DeviceData(dataset, noisy.labels, recipe, device, train_idx, val_idx, arithmetic)

    # --pretrained: read once, copied into every network the method builds (fc stays fresh).
    initial_weights = read_state_dict(spec.pretrained) if spec.pretrained else None

    def build_network(i: int) -> nn.Module:
        # Scoped seeding, common to every method of (dataset, model, seed): the i-th network starts
        # from the same weights on every run and in every method and hyperparameter value.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(common_seed("init", spec.dataset, recipe.model, spec.seed, i))
            net = build_model(recipe.model, dataset.num_classes, dataset.image_shape)
        if initial_weights is not None:
            load_pretrained(net, initial_weights, recipe.model, spec.pretrained)
        net = net.to(device)
        if data.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    facts = trial.facts
    ctx = MethodContext(
        num_classes=dataset.num_classes, num_train=len(noisy.labels), epochs=recipe.epochs,
        noise_kind=facts.noise_kind, noise_rate=facts.noise_rate, device=device,
        seed=derive_seed("method-seed", spec.hash), build_network=build_network, batch_size=recipe.batch_size,
        dataset=spec.dataset, protocol=spec.protocol,
    )
    method = get_method(spec.method)(trial.filled_hparams, ctx).to(device)
    return TrialSetup(trial, dataset, noisy, data, method)
