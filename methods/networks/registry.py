"""The model registry: ``@register_model(name, description, min_side)`` on a factory
``(num_classes, image_shape) -> nn.Module`` (timm-style).

Every model's ``forward(x, return_features=False)`` returns logits, or
``(logits, features)`` with the penultimate features (what LEND dilutes over and
self-learning elects prototypes from).  Every model's classifier is ``fc``, which is
what ``load_pretrained`` leaves out when it copies weights trained for other classes.
The factories are called only by :func:`build_model`, so this file needs no torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from noisybench.core import plugins, rules
from noisybench.core.errors import BenchError

if TYPE_CHECKING:
    from torch import nn

ModelFactory = Callable[[int, tuple[int, int, int]], "nn.Module"]
_MODELS: dict[str, ModelFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}
_MIN_SIDES: dict[str, int] = {}
_RULES: dict[str, tuple[int, dict[int, str]]] = {}  # name -> (rule_version, rule_history), where declared
MODEL_PLUGIN_GROUP = "noisybench.models"  # other packages' networks (core/plugins.py)


def register_model(name: str, description: str, min_side: int = 1, rule_version: int | None = None,
                   rule_history: dict[int, str] | None = None):
    """``min_side``: the smallest image height and width the network can take (its pools and
    unpadded convolutions would shrink a smaller map to nothing).  ``rule_version`` and
    ``rule_history``: the version of what the network computes, and one line per version
    (core/rules.py); every built-in declares them, a plugin's network without them reads as 1."""
    if rule_version is not None or rule_history is not None:
        rules.check_declaration("model", name, rule_version, rule_history)

    def decorate(factory: ModelFactory) -> ModelFactory:
        taken_by = _MODELS[name].__module__ if name in _MODELS else None
        plugins.claim(MODEL_PLUGIN_GROUP, name, factory.__module__, taken_by)  # a clash raises, naming both
        _MODELS[name] = factory
        _DESCRIPTIONS[name] = description
        _MIN_SIDES[name] = min_side
        if rule_version is not None:
            _RULES[name] = (rule_version, dict(rule_history))
        return factory

    return decorate


def _discover() -> None:
    """Import the installed plugins' networks once (every question to the registry asks this first)."""
    plugins.load(MODEL_PLUGIN_GROUP, forget=lambda name: [table.pop(name, None)
                                                          for table in (_MODELS, _DESCRIPTIONS, _MIN_SIDES, _RULES)])


def model_names() -> list[str]:
    _discover()
    return sorted(_MODELS)


def describe_models() -> dict[str, str]:
    _discover()
    return {name: text + plugins.marker(MODEL_PLUGIN_GROUP, name) for name, text in sorted(_DESCRIPTIONS.items())}


def check_model_name(name: str) -> None:
    _discover()
    if name not in _MODELS:
        raise BenchError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}"
                         + plugins.missing_hint(MODEL_PLUGIN_GROUP, name))


def model_rule_declaration(name: str) -> tuple[int, dict[int, str]] | None:
    """(rule_version, rule_history) as the network's registration declares them; None if it does not."""
    check_model_name(name)
    return _RULES.get(name)


def min_image_side(name: str) -> int:
    check_model_name(name)
    return _MIN_SIDES[name]


def check_model_fits(name: str, image_shape: tuple[int, int, int], dataset: str | None = None) -> None:
    """Refuse, in one line naming the fix, a model whose pools and unpadded convolutions
    cannot take images of this size (e.g. Co-teaching's CNN on the 8x8 digits)."""
    need = min_image_side(name)
    _, h, w = image_shape
    if min(h, w) < need:
        what = f"the {h}x{w} images of {dataset}" if dataset else f"{h}x{w} images"
        fits = [n for n in model_names() if _MIN_SIDES[n] <= min(h, w)]
        raise BenchError(f"model {name} needs images of at least {need}x{need} and cannot take {what}; "
                         f"pass --model with one that can ({', '.join(fits)})")


def build_model(name: str, num_classes: int, image_shape: tuple[int, int, int]) -> "nn.Module":
    check_model_fits(name, image_shape)
    return _MODELS[name](num_classes, image_shape)
