"""The networks of the papers that the ``original`` protocol reproduces, each checked layer for
layer against its official definition: Co-teaching's 9-conv ``coteaching_cnn`` (also SIGUA's),
JoCoR's ``jocor_cnn``, Me-Momentum's ``lenet``, ``memomentum_resnet18`` and ``memomentum_resnet34``,
LEND's ``lend_preact_resnet18``, CausalNL's ``causalnl_resnet18``.
(JoCoR's MNIST MLP is ``mlp1`` and GCE's ResNet-34 is ``resnet34``, in backbones.py.)
Each method's ``original`` recipes (in its own file) name these networks per dataset.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from noisybench.methods.networks.backbones import (
    BasicBlock,
    CifarResNetBody,
    FeatureClassifier,
    PreActBlock,
    TorchvisionResNet,
)
from noisybench.methods.networks.registry import register_model


# --------------------------------------------------------------------------------------
# The papers' own networks (protocol `original`)
# --------------------------------------------------------------------------------------
def _conv3x3(cin: int, cout: int, padding: int, activation: Callable[[], nn.Module]) -> list[nn.Module]:
    """3x3 conv (with bias, as in the papers' code) -> BatchNorm -> activation."""
    return [nn.Conv2d(cin, cout, 3, stride=1, padding=padding), nn.BatchNorm2d(cout), activation()]


def _leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.01)


@register_model("coteaching_cnn", "Co-teaching's (and SIGUA's) 9-conv CNN, 128-256-512-256-128, LeakyReLU, "
                "no dropout, as its code ran (~4.4M parameters); images of at least 28x28", min_side=28,
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
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
                "(its Table 3; the code as run had none); images of at least 28x28", min_side=28,
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def coteaching_cnn_dropout(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """Co-teaching's CNN as its paper's Table 3 draws it: channel dropout 0.25 after each of the
    first two max-pools while training (see ``coteaching_cnn`` for why the default has none)."""
    return coteaching_cnn(num_classes, image_shape, dropout=0.25)


@register_model("jocor_cnn", "JoCoR's CIFAR CNN: 6 convs 64-64-128-128-196-16 with BatchNorm and ReLU, "
                "3 max-pools, linear (~0.52M parameters)", min_side=8,
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
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
                "on MNIST; Me-Momentum's MNIST network)", min_side=12,
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
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
                "has padding 0 (~11.2M parameters)", min_side=3,
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
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
                "has padding 0 (~21.3M parameters)", min_side=3,
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def memomentum_resnet34(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-34 as in Me-Momentum (tmllab/2021_ICCV_Me-Momentum networks/Resnet.py,
    ``ResNet34``, which its main.py uses on CIFAR-100): ``resnet34``'s blocks [3, 4, 6, 3] with
    the padding-0 stem and adaptive pool of ``memomentum_resnet18``.  Same parameter count as
    ``resnet34``.  Deviation: the stem takes ``image_shape[0]`` channels (the reference fixes 3).
    """
    body = CifarResNetBody(BasicBlock, image_shape[0], preact=False, blocks=(3, 4, 6, 3), stem_padding=0)
    return FeatureClassifier(body, 512, num_classes)


@register_model("lend_preact_resnet18", "LEND's official PreAct ResNet-18: as preact_resnet18 but without the "
                "final BN-ReLU, so its features can be negative (~11.2M parameters)",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def lend_preact_resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """PreAct ResNet-18 as in LEND (Zhang et al., Machine Learning 2022; zhangchuang96/lend
    models/preact_resnet.py, ``PreActResNet18``, which its main.py trains on CIFAR-10/100):

        conv 3x3 64 (stride 1, padding 1, no bias; no BN or ReLU after it)
        4 stages of 2 PreActBlocks at 64, 128, 256, 512 (strides 1, 2, 2, 2), each block
            out = relu(bn1(x)); shortcut = conv1x1(out) where the shape changes (no BN), else x;
            return conv2(relu(bn2(conv1(out)))) + shortcut
        average pool of the last block's sum, then linear 512 -> classes (with bias)

    Nothing normalises or rectifies the last block's sum, so the pooled features -- what the
    official forward returns next to the logits and LEND dilutes over -- can be negative, and the
    clamp in LEND's affinity [f_i . f_j]_+ matters.  11,166,016 + 513 x classes parameters
    (11,171,146 for 10 classes).

    Deviations: the stem takes ``image_shape[0]`` channels (the reference fixes 3); the final
    pool is adaptive where the reference's ``avg_pool2d(out, 4)`` assumes a 4x4 map (the same on
    32x32 and 28x28 inputs); the head is named ``fc`` (the reference: ``linear``) and the stages
    ``layers.0-3`` (``layer1-4``), as every network here names them.
    """
    body = CifarResNetBody(PreActBlock, image_shape[0], preact=True, final_bn_relu=False)
    return FeatureClassifier(body, 512, num_classes)


class DivideMixPreActBlock(PreActBlock):
    """The PreActBlock of DivideMix's PreResNet.py: BN-ReLU before each 3x3 conv, a 1x1 conv
    shortcut where the shape changes, and an identity shortcut that carries the pre-activated
    relu(bn1(x)), not x as in He et al."""

    identity_from_preactivation = True


@register_model("dividemix_preact_resnet18", "DivideMix's PreAct ResNet-18 (PreResNet.py ResNet18): a conv-BN-ReLU "
                "stem, pre-activated identity shortcuts, no final BN (~11.2M parameters)",
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def dividemix_preact_resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """PreAct ResNet-18 as in DivideMix (Li et al., ICLR 2020; LiJunnan1992/DivideMix PreResNet.py,
    ``ResNet18`` = ``ResNet(PreActBlock, [2, 2, 2, 2])``, which Train_cifar.py trains on CIFAR-10/100):

        conv 3x3 64 (no bias) -> BN -> ReLU
        4 stages of 2 DivideMixPreActBlocks at 64, 128, 256, 512 (strides 1, 2, 2, 2)
        average pool of the last block's sum (no final BN-ReLU), linear 512 -> classes

    It differs from ``preact_resnet18`` in the stem (BN-ReLU after it), the identity shortcut
    (relu(bn1(x)) instead of x) and the missing final BN-ReLU.  Deviations: the stem takes
    ``image_shape[0]`` channels; the pool is adaptive where the reference's ``avg_pool2d(out, 4)``
    assumes a 4x4 map (the same on 32x32 inputs); the head is ``fc`` (the reference: ``linear``).
    """
    body = CifarResNetBody(DivideMixPreActBlock, image_shape[0], preact=False)
    return FeatureClassifier(body, 512, num_classes)


@register_model("causalnl_resnet18", "CausalNL's Fashion-MNIST ResNet-18: torchvision's layout (7x7 stride-2 stem, "
                "3x3 max-pool) with a stem for the images' channels (~11.2M parameters)", min_side=2,
                rule_version=1, rule_history={1: "noisybench 0.2.0: layers and initialisation as released"})
def causalnl_resnet18(num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """CausalNL's network (Yao et al., NeurIPS 2021; mylib/models/resnet.py ``resnet18`` with
    ``input_channel=1``): torchvision's ResNet-18, its first convolution taking the images'
    channels, convolutions kaiming-normal (fan_out) and BatchNorm at 1/0 as torchvision
    initialises them, and a fresh default-initialised head.  A 28x28 image is 7x7 after the stem.
    """
    from torchvision.models import resnet18 as torchvision_resnet18  # torchvision loads slowly: only when used

    net = torchvision_resnet18(weights=None, num_classes=num_classes)
    if image_shape[0] != 3:
        net.conv1 = nn.Conv2d(image_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return TorchvisionResNet(net)
