"""The shared backbones: ``mlp``, ``mlp1``, a small ``cnn``, the CIFAR ``resnet18``,
``preact_resnet18`` and ``resnet34``, ``vgg19_bn`` and torchvision's ImageNet ``resnet50``.

The papers' own networks, which the ``original`` protocol reproduces, are in papers.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisybench.methods.networks.registry import register_model


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


@register_model("mlp", "two hidden layers of 256 with ReLU; for the 8x8 digits",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def mlp(num_classes: int, image_shape: tuple[int, int, int], hidden: int = 256) -> nn.Module:
    c, h, w = image_shape
    body = nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
    )
    return FeatureClassifier(body, hidden, num_classes)


@register_model("mlp1", "one hidden layer of 256 with ReLU (JoCoR's MNIST MLPNet)",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def mlp1(num_classes: int, image_shape: tuple[int, int, int], hidden: int = 256) -> nn.Module:
    # hongxin001/JoCoR model/cnn.py MLPNet: Linear(784, 256) -> ReLU -> Linear(256, 10).
    c, h, w = image_shape
    body = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(inplace=True))
    return FeatureClassifier(body, hidden, num_classes)


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("cnn", "small 6-conv CNN (64-128-196) with BatchNorm; fast on a CPU",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
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
    """He et al. 2016, "Identity mappings in deep residual networks": BN-ReLU before each conv.

    The identity shortcut carries x; a block with ``identity_from_preactivation`` (DivideMix's
    PreResNet.py) carries relu(bn1(x)) instead."""

    identity_from_preactivation = False

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
        if self.shortcut is not None:
            shortcut = self.shortcut(out)
        else:
            shortcut = out if self.identity_from_preactivation else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class CifarResNetBody(nn.Module):
    """ResNet for 32x32 inputs: a 3x3 stem, no max-pool, stages of 64-128-256-512 with
    ``blocks`` blocks each ((2, 2, 2, 2): ResNet-18, (3, 4, 6, 3): ResNet-34).

    ``stem_padding`` 1 keeps the 32x32 map; Me-Momentum's ResNets use 0 (a 30x30 map).
    ``final_bn_relu`` (pre-activation only): a last BN-ReLU after the final block, before the
    pool (He et al. 2016's layout); LEND's official network has none (papers.py).
    """

    def __init__(self, block: type[nn.Module], in_channels: int, preact: bool,
                 blocks: tuple[int, int, int, int] = (2, 2, 2, 2), stem_padding: int = 1,
                 final_bn_relu: bool = True):
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, stem_padding, bias=False)
        self.bn1 = nn.BatchNorm2d(64) if not preact else None
        layers, cin = [], 64
        for (cout, stride), count in zip(((64, 1), (128, 2), (256, 2), (512, 2)), blocks):
            layers.append(nn.Sequential(block(cin, cout, stride), *(block(cout, cout, 1) for _ in range(count - 1))))
            cin = cout
        self.layers = nn.Sequential(*layers)
        # Pre-activation blocks leave their sum un-normalised, so He et al.'s nets end with
        # BN-ReLU before pooling; without it the pooled features can be negative.
        self.final_bn = nn.BatchNorm2d(512) if preact and final_bn_relu else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        if self.bn1 is not None:
            out = F.relu(self.bn1(out))
        out = self.layers(out)
        if self.final_bn is not None:
            out = F.relu(self.final_bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


@register_model("resnet18", "CIFAR ResNet-18 (3x3 stem, no max-pool, ~11.2M parameters)",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    return FeatureClassifier(CifarResNetBody(BasicBlock, image_shape[0], preact=False), 512, num_classes)


@register_model("preact_resnet18", "CIFAR PreAct ResNet-18 with a final BN-ReLU before the pool (He et al. 2016; "
                "~11.2M parameters); LEND's official net, without it, is lend_preact_resnet18",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def preact_resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """Pre-activation ResNet-18 for 32x32 inputs (He et al., "Identity mappings in deep residual
    networks", 2016): a bare 3x3 stem, PreActBlocks [2, 2, 2, 2] at 64-128-256-512 with a bare
    1x1 conv shortcut where the shape changes, then BN-ReLU, global average pool, linear.  The
    final BN-ReLU makes the features non-negative.  This is not LEND's official network, which
    pools the last block's sum directly: that one is ``lend_preact_resnet18`` (papers.py).
    """
    return FeatureClassifier(CifarResNetBody(PreActBlock, image_shape[0], preact=True), 512, num_classes)


@register_model("resnet34", "CIFAR ResNet-34 (3x3 stem, [3,4,6,3] basic blocks, ~21.3M parameters; GCE's network)",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def resnet34(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-34 for CIFAR as in AlanChou/Truncated-Loss models/resnet.py (``ResNet34``: the
    reference code of GCE, Zhang & Sabuncu 2018), which is kuangliu/pytorch-cifar's: a 3x3
    stride-1 stem with padding 1, BatchNorm, ReLU, no max-pool; BasicBlocks [3, 4, 6, 3] at
    64-128-256-512 with a 1x1 conv + BN shortcut where the shape changes; average pool; linear.

    Deviations: the stem takes ``image_shape[0]`` channels (the reference fixes 3), and the
    final pool is adaptive where the reference's ``avg_pool2d(out, 4)`` assumes a 4x4 map --
    the same on 32x32 (CIFAR) and 28x28 (MNIST) inputs, whose last map is 4x4.
    """
    body = CifarResNetBody(BasicBlock, image_shape[0], preact=False, blocks=(3, 4, 6, 3))
    return FeatureClassifier(body, 512, num_classes)


# --------------------------------------------------------------------------------------
# VGG-19-BN (Animal-10N) and torchvision's ResNet-50 (Clothing1M, Food-101N)
# --------------------------------------------------------------------------------------
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M")  # configuration "E" of Simonyan & Zisserman (2015)


class VGG(nn.Module):
    """torchvision's ``vgg19_bn`` layout (conv-BN-ReLU stages, adaptive 7x7 average pool,
    4096-4096 classifier with dropout), with the last linear layer named ``fc``.

    The max-pools use ``ceil_mode=True``: identical on the even sizes VGG meets (64 -> 2 on
    Animal-10N, 224 -> 7 on ImageNet) and keeps a 1x1 map at 1x1 instead of failing on
    inputs smaller than 32x32.  Weight initialisation is torchvision's.
    """

    def __init__(self, in_channels: int, num_classes: int, layout=VGG19_LAYOUT):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(cin, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
                cin = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(cin * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
        )
        self.fc = nn.Linear(4096, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, return_features: bool = False):
        features = self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
        logits = self.fc(features)
        return (logits, features) if return_features else logits


@register_model("vgg19_bn", "VGG-19 with BatchNorm, torchvision's layout (~139M parameters; Animal-10N)",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def vgg19_bn(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    return VGG(image_shape[0], num_classes)


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet's own modules under their own names (so torchvision's ImageNet
    state dicts load key for key), with ``forward(x, return_features)``."""

    def __init__(self, resnet: nn.Module):
        super().__init__()
        for name, child in resnet.named_children():
            self.add_module(name, child)

    def forward(self, x: Tensor, return_features: bool = False):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = torch.flatten(self.avgpool(x), 1)
        logits = self.fc(features)
        return (logits, features) if return_features else logits


@register_model("resnet50", "torchvision's ImageNet ResNet-50 (~23.5M parameters); --pretrained loads its weights",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def resnet50(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    from torchvision.models import (
        resnet50 as torchvision_resnet50,  # torchvision loads slowly: only when used
    )

    net = torchvision_resnet50(weights=None)
    # A new head for this dataset's classes, as DivideMix does after loading ImageNet weights.
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    if image_shape[0] != 3:  # grey images: a stem for their channels (ImageNet weights then do not fit)
        net.conv1 = nn.Conv2d(image_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return TorchvisionResNet(net)
