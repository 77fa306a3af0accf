"""Networks: ``mlp``, a small ``cnn``, the CIFAR ``resnet18`` and ``preact_resnet18``.

Every model's ``forward(x, return_features=False)`` returns logits, or
``(logits, features)`` with the penultimate features (what LEND dilutes over and
self-learning elects prototypes from).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.errors import BenchError

ModelFactory = Callable[[int, tuple[int, int, int]], nn.Module]
_MODELS: dict[str, ModelFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str):
    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        _DESCRIPTIONS[name] = description
        return factory

    return decorate


def model_names() -> list[str]:
    return sorted(_MODELS)


def describe_models() -> dict[str, str]:
    return dict(sorted(_DESCRIPTIONS.items()))


def check_model_name(name: str) -> None:
    if name not in _MODELS:
        raise BenchError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")


def build_model(name: str, num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    check_model_name(name)
    return _MODELS[name](num_classes, image_shape)


class FeatureClassifier(nn.Module):
    """A feature extractor followed by one linear layer."""

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.body = body
        self.feature_dim = feature_dim
        self.fc = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor, return_features: bool = False):
        features = self.body(x)
        logits = self.fc(features)
        return (logits, features) if return_features else logits


@register_model("mlp", "two hidden layers of 256 with ReLU; for the 8x8 digits")
def mlp(num_classes: int, image_shape: tuple[int, int, int], hidden: int = 256) -> nn.Module:
    c, h, w = image_shape
    body = nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
    )
    return FeatureClassifier(body, hidden, num_classes)


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("cnn", "small 6-conv CNN (64-128-196) with BatchNorm; fast on a CPU")
def cnn(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    c, h, w = image_shape
    # Pool only while the map is large enough, so the same net serves 8x8 digits and 32x32 CIFAR.
    pool1 = nn.MaxPool2d(2) if min(h, w) >= 8 else nn.Identity()
    pool2 = nn.MaxPool2d(2) if min(h, w) >= 16 else nn.Identity()
    body = nn.Sequential(
        *_conv_bn(c, 64), *_conv_bn(64, 64), pool1,
        *_conv_bn(64, 128), *_conv_bn(128, 128), pool2,
        *_conv_bn(128, 196), *_conv_bn(196, 196),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return FeatureClassifier(body, 196, num_classes)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """He et al. 2016, "Identity mappings in deep residual networks": BN-ReLU before each conv."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class CifarResNetBody(nn.Module):
    """ResNet-18 for 32x32 inputs: a 3x3 stem, no max-pool, stages of 64-128-256-512."""

    def __init__(self, block: type[nn.Module], in_channels: int, preact: bool):
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64) if not preact else None
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(block(cin, cout, stride), block(cout, cout, 1)))
            cin = cout
        self.layers = nn.Sequential(*layers)
        # Pre-activation nets end with BN-ReLU before pooling (the blocks leave it un-normalised).
        self.final_bn = nn.BatchNorm2d(512) if preact else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        if self.bn1 is not None:
            out = F.relu(self.bn1(out))
        out = self.layers(out)
        if self.final_bn is not None:
            out = F.relu(self.final_bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


@register_model("resnet18", "CIFAR ResNet-18 (3x3 stem, no max-pool, ~11.2M parameters)")
def resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    return FeatureClassifier(CifarResNetBody(BasicBlock, image_shape[0], preact=False), 512, num_classes)


@register_model("preact_resnet18", "CIFAR PreAct ResNet-18 (LEND's official backbone, ~11.2M parameters)")
def preact_resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    return FeatureClassifier(CifarResNetBody(PreActBlock, image_shape[0], preact=True), 512, num_classes)
