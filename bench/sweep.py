"""From the command line's lists to validated TrialSpecs.

Everything a sweep could trip over (an unknown method, a malformed noise spec, a noise
type the dataset cannot take, a missing data root, a bad --hp) is checked here, before
any trial directory is written.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import noisybench.datasets as datasets
import noisybench.noise as noise
from noisybench.bench.trainer.protocols import check_protocol_name, check_recipe_fits_dataset, default_protocol, resolve_recipe
from noisybench.bench.trainer.resolve import ResolvedTrial, resolve_with
from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec
from noisybench.methods import build_hparams, get_method
from noisybench.methods.base import TrialFacts
from noisybench.methods.networks import check_model_name
from noisybench.methods.networks.pretrained import check_pretrained
from noisybench.methods.registry import canonical_given, trial_plugins


def split_list(text: str | None, what: str) -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not items:
        raise BenchError(f"--{what} is empty; give a comma-separated list, e.g. --{what} " +
                         {"methods": "standard,coteaching", "noise": "sym:0.4,pair:0.45"}.get(what, "a,b"))
    return list(dict.fromkeys(items))  # keep order, drop repeats


def parse_seeds(text: str | int) -> list[int]:
    """``N`` -> seeds 0..N-1; ``A-B`` -> A..B inclusive."""
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        n = int(text)
        if n < 1:
            raise BenchError("--seeds 0: give at least one seed, e.g. --seeds 3 (seeds 0,1,2) or --seeds 3-5")
        return list(range(n))
    match = re.fullmatch(r"(\d+)-(\d+)", text)
    if match and int(match.group(1)) <= int(match.group(2)):
        return list(range(int(match.group(1)), int(match.group(2)) + 1))
    raise BenchError(f"--seeds {text}: expected N (seeds 0..N-1) or an inclusive range A-B with A <= B, e.g. 3-5")


def parse_feature_epochs(text: str | None, trials: list[ResolvedTrial]) -> tuple[int, ...]:
    """``--save-features 10,100`` -> (10, 100), checked against every trial's number of epochs
    so that a snapshot that could never be written is refused before the sweep starts."""
    if not text:
        return ()
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or not all(re.fullmatch(r"\d+", t) and int(t) >= 1 for t in items):
        raise BenchError(f"--save-features {text}: expected comma-separated epochs counted from 1, e.g. 10,100")
    epochs = tuple(sorted({int(t) for t in items}))
    for trial in trials:
        too_late = [e for e in epochs if e > trial.recipe.epochs]
        if too_late:
            raise BenchError(f"--save-features {text}: {trial.method} trains {trial.recipe.epochs} epochs, so epoch "
                             f"{too_late[0]} never comes; use epochs between 1 and {trial.recipe.epochs}")
    return epochs


def parse_hp(assignments: Iterable[str] | None, methods: list[str]) -> dict[str, dict[str, list[str]]]:
    """``--hp lend.k=2,4,8 --hp coteaching.forget_rate=0.2,coteaching.num_gradual=5`` -> per method,
    each hyperparameter's values: an item without ``=`` is one more value of the one before it, so
    ``lend.k=2,4,8`` is a grid of three.

    Two assignments of one METHOD.NAME are refused (the last one silently winning would train, and
    name in the trial hash, a value the user may not have meant); a grid is written in one.
    """
    result: dict[str, dict[str, list[str]]] = {}
    for chunk in assignments or []:
        current: list[str] | None = None
        for item in filter(None, (s.strip() for s in chunk.split(","))):
            if "=" not in item and current is not None:
                if item in current:
                    raise BenchError(f"--hp {chunk}: the value {item} is listed twice")
                current.append(item)
                continue
            match = re.fullmatch(r"([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)=(.+)", item)
            if not match:
                raise BenchError(f"--hp {item}: expected METHOD.NAME=VALUE (or a grid METHOD.NAME=A,B,C), "
                                 "e.g. --hp lend.k=8 or --hp lend.k=4,8")
            method, name, value = match.groups()
            if method not in methods:
                raise BenchError(f"--hp {item}: method {method!r} is not in --methods ({','.join(methods)})")
            given = result.setdefault(method, {})
            if name in given and given[name] != [value.strip()]:
                raise BenchError(f"--hp {method}.{name} is given twice, ={','.join(given[name])} and ={value.strip()}; "
                                 f"keep only the one you mean (a grid is one assignment: {method}.{name}=A,B)")
            given[name] = current = [value.strip()]
    return result


def hp_grid(values: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of a method's hyperparameter values (one dict of overrides each)."""
    names = list(values)
    return [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in names))] or [{}]


@dataclass(frozen=True)
class SweepRequest:
    methods: str
    noise: str
    seeds: str
    dataset: str = "digits"
    protocol: str | None = None
    model: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    hp: tuple[str, ...] = ()
    data_root: str | None = None
    download: bool = False  # fetch a missing CIFAR/MNIST through torchvision first (needs internet)
    pretrained: str | None = None  # initial weights for every network (--pretrained PATH)
    precision: str | None = None  # bf16 | fp32 (--precision); None: each device's default


def build_specs(req: SweepRequest) -> list[TrialSpec]:
    """The specs (names) of :func:`build_trials`' trials."""
    return [trial.spec for trial in build_trials(req)]


def build_trials(req: SweepRequest) -> list[ResolvedTrial]:
    """Validate the whole request and resolve the product methods x noise x seeds: every trial with
    its recipe and every hyperparameter filled (bench/trainer/resolve.py), named by a spec that
    every spelling of the same configuration shares."""
    datasets.check_dataset_name(req.dataset)
    protocol = req.protocol or default_protocol(req.dataset)
    check_protocol_name(protocol)
    if req.model is not None:
        check_model_name(req.model)
    for flag, value in (("epochs", req.epochs), ("batch-size", req.batch_size)):
        if value is not None and value < 1:
            raise BenchError(f"--{flag} {value}: must be at least 1")
    methods = split_list(req.methods, "methods")
    for name in methods:
        get_method(name)
    hp = parse_hp(req.hp, methods)
    # Type-checks every override now, not mid-sweep.
    variants = [(name, overrides) for name in methods for overrides in hp_grid(hp.get(name, {}))]
    for name, overrides in variants:
        build_hparams(name, overrides)
    seeds = parse_seeds(req.seeds)
    noise_specs = [noise.parse_noise(text) for text in split_list(req.noise, "noise")]
    # A missing data root fails here.  The loaded dataset stays cached for this process's trials.
    dataset = datasets.load(req.dataset, req.data_root, download=req.download)
    for spec in noise_specs:
        noise.check_noise_for_dataset(spec, dataset, data_root=req.data_root)
    # An absolute path: the trial may run in another directory (a SLURM job), and the path is in the hash.
    pretrained = str(Path(req.pretrained).expanduser().resolve()) if req.pretrained else None
    models_checked, plugins, recipes = set(), {}, {}
    for name in methods:
        recipe = resolve_recipe(protocol, req.dataset, name, model=req.model, epochs=req.epochs,
                                batch_size=req.batch_size)
        check_recipe_fits_dataset(recipe, dataset, protocol)
        recipes[name] = recipe
        in_memory_reason = get_method(name).needs_in_memory_data
        if dataset.train_stream is not None and in_memory_reason:
            raise BenchError(f"{name} cannot train on {req.dataset}, which is streamed from JPEG files: "
                             f"{in_memory_reason}; use an in-memory dataset")
        plugins[name] = trial_plugins(name, req.dataset, recipe.model)  # in the hash: a new version, a new trial
        if recipe.imagenet_init and pretrained is None and req.model is None:
            raise BenchError(
                f"protocol {protocol} fine-tunes ImageNet-pretrained {recipe.model} weights on {req.dataset}, and "
                f"bench cannot download them: pass --pretrained PATH (e.g. torchvision's resnet50-0676ba61.pth), "
                f"or --model NAME to train another model from scratch"
            )
        if pretrained is not None and recipe.model not in models_checked:
            check_pretrained(pretrained, recipe.model, dataset.num_classes, dataset.image_shape)
            models_checked.add(recipe.model)
    # Each trial's --hp values in their one canonical spelling, those the resolution gives anyway
    # dropped: q=0.70 is q=0.7, gce[q=0.7] is gce, and coteaching[forget_rate=0.4] at sym:0.4 is
    # coteaching -- one trial (and one initialisation).  A method that cannot train under a noise
    # (a forget rate for noise of unknown rate) is refused here, before anything is written.
    cells = []
    for (name, overrides), n in itertools.product(variants, noise_specs):
        facts = TrialFacts(dataset=req.dataset, protocol=protocol, noise_kind=n.kind,
                           noise_rate=noise.nominal_rate(n, dataset), num_classes=dataset.num_classes,
                           epochs=recipes[name].epochs)
        try:
            given = canonical_given(name, overrides, dict(recipes[name].method_hparams), facts)
        except BenchError as exc:
            raise BenchError(f"--noise {n.text}: {exc}") from None
        if (name, given, n) not in [cell[:3] for cell in cells]:
            cells.append((name, given, n, facts))
    return [
        resolve_with(TrialSpec(dataset=req.dataset, method=m, noise=n.text, seed=s, protocol=protocol,
                               model=req.model, epochs=req.epochs, batch_size=req.batch_size, hparams=given,
                               pretrained=pretrained, precision=req.precision, plugin=plugins[m]),
                     recipes[m], facts)
        for (m, given, n, facts), s in itertools.product(cells, seeds)
    ]
