"""The built-in noise kinds, each registered with :func:`noise.registry.register_kind`.

Samplers receive the parsed spec, the dataset, the trial's seeded generator and the
resolved data root, and return :class:`noise.registry.Sampled`.  Dataset checks that can
fail on user input live in the ``check`` functions, which run before any trial starts.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from noisybench.core.errors import BenchError
from noisybench.noise._dataset import training_size
from noisybench.noise.files import load_label_file
from noisybench.noise.human import HUMAN_LABEL_SETS, human_labels, own_noisy_labels, variants_of
from noisybench.noise.instance import part_dependent_labels
from noisybench.noise.registry import TAKES_NOTHING, TAKES_PATH, TAKES_RATE, TAKES_VARIANT, Sampled, register_kind
from noisybench.noise.sampling import sample_from_transition
from noisybench.noise.transition import (
    asymmetric_transition,
    identity_transition,
    pair_transition,
    symmetric_transition,
)

if TYPE_CHECKING:
    from noisybench.datasets.registry import Dataset
    from noisybench.noise.spec import NoiseSpec


def _clean_labels(dataset: "Dataset") -> np.ndarray:
    # check_noise_for_dataset has refused datasets without clean labels for these kinds.
    assert dataset.train_labels is not None
    return np.asarray(dataset.train_labels, dtype=np.int64)


def _from_transition(transition: np.ndarray, dataset: "Dataset", rng: np.random.Generator) -> Sampled:
    labels = sample_from_transition(_clean_labels(dataset), transition, rng)
    return Sampled(labels=labels, transition=transition)


@register_kind("clean", takes=TAKES_NOTHING, syntax="clean", description="the clean training labels (no noise)",
               nominal_rate=lambda spec, dataset: 0.0)
def sample_clean(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    return Sampled(
        labels=_clean_labels(dataset).copy(),
        transition=identity_transition(dataset.num_classes),
    )


@register_kind(
    "sym",
    takes=TAKES_RATE,
    syntax="sym:R",
    description="symmetric: keep w.p. 1-R, else one of the other C-1 classes uniformly (Patrini et al. 2017)",
)
def sample_symmetric(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    rate = float(spec.rate)  # type: ignore[arg-type]
    return _from_transition(symmetric_transition(dataset.num_classes, rate), dataset, rng)


@register_kind(
    "pair",
    takes=TAKES_RATE,
    syntax="pair:R",
    description="pair flipping: class i -> (i+1) mod C w.p. R (Co-teaching, Han et al. 2018)",
)
def sample_pair(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    rate = float(spec.rate)  # type: ignore[arg-type]
    return _from_transition(pair_transition(dataset.num_classes, rate), dataset, rng)


def check_asymmetric(spec: "NoiseSpec", dataset: "Dataset", data_root: Path) -> None:
    if not dataset.asym_map:
        raise BenchError(
            f"dataset {dataset.name} has no asymmetric flip map for {spec.text}; "
            f"use pair:{spec.rate!r} instead (or sym:{spec.rate!r})"
        )


@register_kind(
    "asym",
    takes=TAKES_RATE,
    syntax="asym:R",
    description="asymmetric: the dataset's similar-class map, each source class flips w.p. R (Patrini et al. 2017)",
    check=check_asymmetric,
)
def sample_asymmetric(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    rate = float(spec.rate)  # type: ignore[arg-type]
    transition = asymmetric_transition(dataset.num_classes, rate, dataset.asym_map or {})
    return _from_transition(transition, dataset, rng)


def check_instance(spec: "NoiseSpec", dataset: "Dataset", data_root: Path) -> None:
    # Streamed datasets (Clothing1M, Food-101N) keep no images in memory to project.
    if len(dataset.train_images) != training_size(dataset):
        raise BenchError(
            f"{spec.text} needs the training images in memory, but dataset {dataset.name} streams them; "
            f"use a class-dependent spec such as sym:{spec.rate!r} or pair:{spec.rate!r}"
        )


@register_kind(
    "inst",
    takes=TAKES_RATE,
    syntax="inst:R",
    description="instance-dependent (part-dependent) noise of mean rate ~R (Xia et al. 2020)",
    check=check_instance,
)
def sample_instance(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    rate = float(spec.rate)  # type: ignore[arg-type]
    labels = part_dependent_labels(dataset.train_images, _clean_labels(dataset), dataset.num_classes, rate, rng)
    return Sampled(labels=labels, transition=None)


def _human_label_set(spec: "NoiseSpec"):
    return HUMAN_LABEL_SETS[(spec.kind, spec.arg)]


def check_human(spec: "NoiseSpec", dataset: "Dataset", data_root: Path) -> None:
    human_labels(_human_label_set(spec), dataset, data_root)


def sample_human(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    label_set = _human_label_set(spec)
    labels = human_labels(label_set, dataset, data_root)
    return Sampled(labels=labels, transition=None)


# Human labels are checked against clean_label by human_labels itself, with a message
# about image order, so the generic "needs clean labels" refusal is switched off here.
register_kind(
    "cifar10n",
    takes=TAKES_VARIANT,
    variants=variants_of("cifar10n"),
    syntax="cifar10n:" + "|".join(variants_of("cifar10n")),
    description="CIFAR-10N human labels, 9%-40% noise (Wei et al. 2022); dataset cifar10 only",
    needs_clean_labels=False,
    check=check_human,
    nominal_rate=lambda spec, dataset: _human_label_set(spec).published_rate,
)(sample_human)
register_kind(
    "cifar100n",
    takes=TAKES_VARIANT,
    variants=variants_of("cifar100n"),
    syntax="cifar100n:" + "|".join(variants_of("cifar100n")),
    description="CIFAR-100N human labels, 40.2% noise (Wei et al. 2022); dataset cifar100 only",
    needs_clean_labels=False,
    check=check_human,
    nominal_rate=lambda spec, dataset: _human_label_set(spec).published_rate,
)(sample_human)


def check_real(spec: "NoiseSpec", dataset: "Dataset", data_root: Path) -> None:
    own_noisy_labels(dataset)


@register_kind(
    "real",
    takes=TAKES_NOTHING,
    syntax="real",
    description="the dataset's own noisy labels (Animal-10N, Clothing1M, Food-101N ...)",
    needs_clean_labels=False,
    check=check_real,
    nominal_rate=lambda spec, dataset: dataset.own_noise_rate,
)
def sample_real(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    return Sampled(labels=own_noisy_labels(dataset), transition=None)


def check_file(spec: "NoiseSpec", dataset: "Dataset", data_root: Path) -> None:
    load_label_file(spec.arg, dataset)  # type: ignore[arg-type]


@register_kind(
    "file",
    takes=TAKES_PATH,
    syntax="file:PATH.npy",
    description="labels from an int64 .npy file, one per training sample in training order",
    needs_clean_labels=False,
    check=check_file,
    nominal_rate=lambda spec, dataset: None,  # a label file says nothing of its rate
)
def sample_file(spec: "NoiseSpec", dataset: "Dataset", rng: np.random.Generator, data_root: Path) -> Sampled:
    return Sampled(labels=load_label_file(spec.arg, dataset), transition=None)  # type: ignore[arg-type]
