"""Networks: ``mlp``, ``mlp1``, a small ``cnn``, the CIFAR ``resnet18``, ``preact_resnet18`` and
``resnet34``, ``vgg19_bn`` and torchvision's ImageNet ``resnet50``; and the networks of the
papers that the ``original`` protocol reproduces: Co-teaching's 9-conv ``coteaching_cnn``,
JoCoR's ``jocor_cnn``, Me-Momentum's ``lenet``, ``memomentum_resnet18`` and ``memomentum_resnet34``.

Every model's ``forward(x, return_features=False)`` returns logits, or
``(logits, features)`` with the penultimate features (what LEND dilutes over and
self-learning elects prototypes from).  Every model's classifier is ``fc``, which is
what :func:`load_pretrained` leaves out when it copies weights trained for other classes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.errors import BenchError

ModelFactory = Callable[[int, tuple[int, int, int]], nn.Module]
_MODELS: dict[str, ModelFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}
_MIN_SIDES: dict[str, int] = {}


def register_model(name: str, description: str, min_side: int = 1):
    """``min_side``: the smallest image height and width the network can take (its pools and
    unpadded convolutions would shrink a smaller map to nothing)."""
    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        _DESCRIPTIONS[name] = description
        _MIN_SIDES[name] = min_side
        return factory

    return decorate


def model_names() -> list[str]:
    return sorted(_MODELS)


def describe_models() -> dict[str, str]:
    return dict(sorted(_DESCRIPTIONS.items()))


def check_model_name(name: str) -> None:
    if name not in _MODELS:
        raise BenchError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")


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


def build_model(name: str, num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    check_model_fits(name, image_shape)
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


@register_model("mlp1", "one hidden layer of 256 with ReLU (JoCoR's MNIST MLPNet)")
def mlp1(num_classes: int, image_shape: tuple[int, int, int], hidden: int = 256) -> nn.Module:
    # hongxin001/JoCoR model/cnn.py MLPNet: Linear(784, 256) -> ReLU -> Linear(256, 10).
    c, h, w = image_shape
    body = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(inplace=True))
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
    """ResNet for 32x32 inputs: a 3x3 stem, no max-pool, stages of 64-128-256-512 with
    ``blocks`` blocks each ((2, 2, 2, 2): ResNet-18, (3, 4, 6, 3): ResNet-34).

    ``stem_padding`` 1 keeps the 32x32 map; Me-Momentum's ResNets use 0 (a 30x30 map).
    """

    def __init__(self, block: type[nn.Module], in_channels: int, preact: bool,
                 blocks: tuple[int, int, int, int] = (2, 2, 2, 2), stem_padding: int = 1):
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, stem_padding, bias=False)
        self.bn1 = nn.BatchNorm2d(64) if not preact else None
        layers, cin = [], 64
        for (cout, stride), count in zip(((64, 1), (128, 2), (256, 2), (512, 2)), blocks):
            layers.append(nn.Sequential(block(cin, cout, stride), *(block(cout, cout, 1) for _ in range(count - 1))))
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


@register_model("resnet34", "CIFAR ResNet-34 (3x3 stem, [3,4,6,3] basic blocks, ~21.3M parameters; GCE's network)")
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
# The papers' own networks (protocol `original`)
# --------------------------------------------------------------------------------------
def _conv3x3(cin: int, cout: int, padding: int, activation: Callable[[], nn.Module]) -> list[nn.Module]:
    """3x3 conv (with bias, as in the papers' code) -> BatchNorm -> activation."""
    return [nn.Conv2d(cin, cout, 3, stride=1, padding=padding), nn.BatchNorm2d(cout), activation()]


def _leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.01)


@register_model("coteaching_cnn", "Co-teaching's (and SIGUA's) 9-conv CNN, 128-256-512-256-128, LeakyReLU, "
                "no dropout, as its code ran (~4.4M parameters); images of at least 28x28", min_side=28)
def coteaching_cnn(num_classes: int, image_shape: tuple[int, int, int], dropout: float = 0.0) -> nn.Module:
    """The CNN of Co-teaching (Han et al., NeurIPS 2018; bhanML/Co-teaching model.py, class
    ``CNN``), which SIGUA's code uses unchanged (bhanML/SIGUA model.py and main.py, on MNIST
    and CIFAR-10).  Each conv is 3x3 with bias, then BatchNorm and LeakyReLU(0.01):

        conv 128, 128, 128 (padding 1); max-pool 2; [dropout2d 0.25]
        conv 256, 256, 256 (padding 1); max-pool 2; [dropout2d 0.25]
        conv 512, 256, 128 (padding 0); global average pool; linear 128 -> classes

    32x32 -> 16 -> 8 -> 6, 4, 2 -> 1; 28x28 (MNIST) -> 14 -> 7 -> 5, 3, 1.  Below 28x28 the three
    unpadded convs leave nothing, so ``min_side`` is 28 (the 8x8 digits cannot pass).

    Choices and deviations:
    - Dropout: the code calls ``F.dropout2d(h, p=0.25)`` without ``training=``.  Under the
      PyTorch 0.3 of Co-teaching's README (still so in 0.4.1) that argument defaulted to False,
      so the runs behind Co-teaching's published numbers dropped nothing, and neither does this
      net (the project's rule: the official code's behaviour is the default; SIGUA pins PyTorch
      1.0.0, whose default is not checked here).  The paper's
      Table 3 lists dropout 0.25: ``coteaching_cnn_dropout`` is that reading (channel dropout
      while training, off at evaluation).  Today's PyTorch defaults to ``training=True``, so the
      official code run now would drop during evaluation too; neither net does that.
    - The final ``avg_pool2d(kernel_size=h.shape[2])`` is an adaptive average pool (the same
      for square maps); the first conv takes ``image_shape[0]`` channels (``input_channel``).
    - ``top_bn`` is left out: it is False for every dataset in main.py (and ``bn_c1`` is never defined).
    - Initialisation is today's PyTorch default: the same conv/linear bounds as PyTorch 0.3,
      but BatchNorm scales start at 1 where PyTorch < 1.2 drew them from U(0, 1).
    """
    c, _, _ = image_shape
    act = _leaky_relu
    body = nn.Sequential(
        *_conv3x3(c, 128, 1, act), *_conv3x3(128, 128, 1, act), *_conv3x3(128, 128, 1, act),
        nn.MaxPool2d(2, 2), nn.Dropout2d(dropout),
        *_conv3x3(128, 256, 1, act), *_conv3x3(256, 256, 1, act), *_conv3x3(256, 256, 1, act),
        nn.MaxPool2d(2, 2), nn.Dropout2d(dropout),
        *_conv3x3(256, 512, 0, act), *_conv3x3(512, 256, 0, act), *_conv3x3(256, 128, 0, act),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return FeatureClassifier(body, 128, num_classes)


@register_model("coteaching_cnn_dropout", "coteaching_cnn with the paper's dropout 0.25 after both max-pools "
                "(its Table 3; the code as run had none); images of at least 28x28", min_side=28)
def coteaching_cnn_dropout(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """Co-teaching's CNN as its paper's Table 3 draws it: channel dropout 0.25 after each of the
    first two max-pools while training (see ``coteaching_cnn`` for why the default has none)."""
    return coteaching_cnn(num_classes, image_shape, dropout=0.25)


@register_model("jocor_cnn", "JoCoR's CIFAR CNN: 6 convs 64-64-128-128-196-16 with BatchNorm and ReLU, "
                "3 max-pools, linear (~0.52M parameters)", min_side=8)
def jocor_cnn(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """The CNN of JoCoR (Wei et al., CVPR 2020; hongxin001/JoCoR model/cnn.py, class ``CNN``),
    which its main.py uses on CIFAR-10 and CIFAR-100 (MNIST gets ``MLPNet``, here ``mlp1``).
    The "7-layer" network of the paper: six 3x3 convs (padding 1, with bias), each followed by
    BatchNorm (momentum 0.1, the default) and ReLU --

        conv 64, 64; max-pool 2; conv 128, 128; max-pool 2; conv 196, 16; max-pool 2;
        flatten (16 x 4 x 4 = 256 on 32x32); linear 256 -> classes

    -- no dropout (the class takes a ``dropout_rate`` that its forward never uses).

    Deviation: the reference fixes the linear layer's input at 256, i.e. 32x32 images; here it
    is 16 x (H/8) x (W/8) from ``image_shape`` (256 on CIFAR, 144 on 28x28), and the first conv
    takes ``image_shape[0]`` channels.  The features are the flattened 16-channel map.
    """
    c, h, w = image_shape
    act = nn.ReLU
    body = nn.Sequential(
        *_conv3x3(c, 64, 1, act), *_conv3x3(64, 64, 1, act), nn.MaxPool2d(2, 2),
        *_conv3x3(64, 128, 1, act), *_conv3x3(128, 128, 1, act), nn.MaxPool2d(2, 2),
        *_conv3x3(128, 196, 1, act), *_conv3x3(196, 16, 1, act), nn.MaxPool2d(2, 2),
        nn.Flatten(),
    )
    return FeatureClassifier(body, 16 * (h // 8) * (w // 8), num_classes)


@register_model("lenet", "LeNet-5: conv 6 and 16 (5x5), linear 120-84, ReLU, max-pools (~62K parameters "
                "on MNIST; Me-Momentum's MNIST network)", min_side=12)
def lenet(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """LeNet as in Me-Momentum (Bai & Liu, ICCV 2021; tmllab/2021_ICCV_Me-Momentum
    networks/Lenet.py, class ``Lenet``, used by its main.py on MNIST):

        conv 6 (5x5, padding 2) -> ReLU -> max-pool 2 -> conv 16 (5x5) -> ReLU -> max-pool 2
        -> linear 400 -> 120 -> ReLU -> linear 120 -> 84 -> ReLU -> linear 84 -> classes

    (28x28 -> 28 -> 14 -> 10 -> 5: 16 x 5 x 5 = 400.)  The features are the 84 after ReLU.

    Deviations: the reference fixes one input channel, 400 inputs to the first linear layer
    and 10 outputs; here they follow ``image_shape`` (16 x 6 x 6 = 576 on 32x32) and ``num_classes``.
    """
    c, h, w = image_shape
    h2, w2 = (h // 2 - 4) // 2, (w // 2 - 4) // 2  # padded conv, pool, unpadded 5x5 conv, pool
    body = nn.Sequential(
        nn.Conv2d(c, 6, 5, stride=1, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * h2 * w2, 120), nn.ReLU(inplace=True),
        nn.Linear(120, 84), nn.ReLU(inplace=True),
    )
    return FeatureClassifier(body, 84, num_classes)


@register_model("memomentum_resnet18", "Me-Momentum's CIFAR-10 ResNet-18: as resnet18 but the 3x3 stem "
                "has padding 0 (~11.2M parameters)", min_side=3)
def memomentum_resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-18 as in Me-Momentum (Bai & Liu, ICCV 2021; tmllab/2021_ICCV_Me-Momentum
    networks/Resnet.py, ``ResNet18``, which its main.py uses on CIFAR-10).  The blocks and
    stages are ``resnet18``'s (BasicBlock, 1x1 conv + BN shortcut), but the 3x3 stem has
    padding 0, so a 32x32 image becomes a 30x30 map (30 -> 15 -> 8 -> 4 through the stages),
    and the final pool is adaptive, as there.  Same parameter count as ``resnet18``.

    Deviation: the stem takes ``image_shape[0]`` channels (the reference fixes 3).  (The file
    also defines a bias-free ``Linear`` class that its ResNets do not use.)
    """
    body = CifarResNetBody(BasicBlock, image_shape[0], preact=False, blocks=(2, 2, 2, 2), stem_padding=0)
    return FeatureClassifier(body, 512, num_classes)


@register_model("memomentum_resnet34", "Me-Momentum's CIFAR-100 ResNet-34: as resnet34 but the 3x3 stem "
                "has padding 0 (~21.3M parameters)", min_side=3)
def memomentum_resnet34(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-34 as in Me-Momentum (tmllab/2021_ICCV_Me-Momentum networks/Resnet.py,
    ``ResNet34``, which its main.py uses on CIFAR-100): ``resnet34``'s blocks [3, 4, 6, 3] with
    the padding-0 stem and adaptive pool of ``memomentum_resnet18``.  Same parameter count as
    ``resnet34``.  Deviation: the stem takes ``image_shape[0]`` channels (the reference fixes 3).
    """
    body = CifarResNetBody(BasicBlock, image_shape[0], preact=False, blocks=(3, 4, 6, 3), stem_padding=0)
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


@register_model("vgg19_bn", "VGG-19 with BatchNorm, torchvision's layout (~139M parameters; Animal-10N)")
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


@register_model("resnet50", "torchvision's ImageNet ResNet-50 (~23.5M parameters); --pretrained loads its weights")
def resnet50(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    from torchvision.models import resnet50 as torchvision_resnet50  # torchvision loads slowly: only when used

    net = torchvision_resnet50(weights=None)
    # A new head for this dataset's classes, as DivideMix does after loading ImageNet weights.
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    if image_shape[0] != 3:  # grey images: a stem for their channels (ImageNet weights then do not fit)
        net.conv1 = nn.Conv2d(image_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return TorchvisionResNet(net)


# --------------------------------------------------------------------------------------
# Initial weights from a file (--pretrained)
# --------------------------------------------------------------------------------------
HEAD_PREFIX = "fc."  # every model's classifier; sized for the file's classes, so never copied
PRETRAINED_HINT = ("give a local state dict (name -> tensor), e.g. torchvision's ImageNet ResNet-50 "
                   "resnet50-0676ba61.pth, or torch.save(model.state_dict(), PATH)")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state-dict file, read without running pickled code; one-line errors for a missing
    or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"--pretrained {path}: no such file; {PRETRAINED_HINT} (bench cannot download weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  torch raises many types for a truncated or foreign file
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise BenchError(f"--pretrained {path}: not a readable torch file ({reason}); {PRETRAINED_HINT}") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise BenchError(f"--pretrained {path}: holds a {type(state).__name__}, not a state dict of tensors; "
                         f"{PRETRAINED_HINT}")
    return state


def load_pretrained(net: nn.Module, state: dict[str, Tensor], model_name: str, source: str | Path) -> None:
    """Copy every weight of ``state`` into ``net`` except the classifier head (``fc.*``),
    which keeps its fresh initialisation for this dataset's classes.

    Everything else must fit exactly: a missing, extra or differently shaped weight is a
    one-line error, since a half-loaded network would silently train from a mix.
    BatchNorm's ``num_batches_tracked`` counters may be absent (older torchvision files).
    """
    own = net.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    missing = [k for k in own if not k.startswith(HEAD_PREFIX) and k not in body
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in body if k not in own]
    mismatched = [k for k in body if k in own and own[k].shape != body[k].shape]
    if missing or unexpected or mismatched:
        first = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
                 else f"{mismatched[0]} is {tuple(body[mismatched[0]].shape)}, the model's "
                      f"{tuple(own[mismatched[0]].shape)}")
        raise BenchError(
            f"--pretrained {source} does not fit model {model_name}: {len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} differently shaped weights (first: {first}); give a state dict "
            f"saved from {model_name}, or pick the matching --model"
        )
    net.load_state_dict(body, strict=False)


def check_pretrained(path: str | Path, model_name: str, num_classes: int,
                     image_shape: tuple[int, int, int]) -> None:
    """Refuse, before any trial starts, a --pretrained file that cannot initialise the model."""
    with torch.random.fork_rng(devices=[]):  # building a throwaway net must not move anyone's RNG
        net = build_model(model_name, num_classes, image_shape)
    load_pretrained(net, read_state_dict(path), model_name, path)

