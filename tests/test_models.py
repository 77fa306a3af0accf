"""Every model returns logits, and its penultimate features on request."""
from __future__ import annotations

import pytest
import torch

from noisybench.core.errors import BenchError
from noisybench.methods.networks import build_model, min_image_side, model_names


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_logits_and_features(name, shape):
    if min_image_side(name) > shape[1]:  # e.g. Co-teaching's CNN on the 8x8 digits: refused in one line
        with pytest.raises(BenchError, match=rf"model {name} needs images of at least"):
            build_model(name, 7, shape)
        return
    model = build_model(name, 7, shape).eval()
    x = torch.randn(3, *shape)
    logits = model(x)
    logits2, features = model(x, return_features=True)
    assert logits.shape == (3, 7)
    assert features.dim() == 2 and features.shape[0] == 3
    assert torch.allclose(logits, logits2)
    assert torch.allclose(model.fc(features), logits, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet18", "preact_resnet18"])
def test_cifar_resnets_have_the_usual_size(name):
    model = build_model(name, 10, (3, 32, 32))
    params = sum(p.numel() for p in model.parameters())
    assert 11.1e6 < params < 11.3e6
    assert model.body.conv1.kernel_size == (3, 3) and model.body.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def official_preact_resnet18_parameters(num_classes: int) -> int:
    """zhangchuang96/lend models/preact_resnet.py PreActResNet18, counted from its definition: a bias-free
    3x3 stem 3 -> 64; per PreActBlock(cin, cout) BN(cin), conv 3x3 cin -> cout, BN(cout), conv 3x3
    cout -> cout, and a bias-free 1x1 conv shortcut where the shape changes; linear 512 -> classes."""
    total, cin = 3 * 64 * 9, 64
    for cout in (64, 64, 128, 128, 256, 256, 512, 512):
        total += 2 * cin + cin * cout * 9 + 2 * cout + cout * cout * 9 + (cin * cout if cin != cout else 0)
        cin = cout
    return total + 512 * num_classes + num_classes


def test_lend_preact_resnet18_is_the_official_network():
    assert official_preact_resnet18_parameters(10) == 11_171_146
    for classes in (10, 100):
        model = build_model("lend_preact_resnet18", classes, (3, 32, 32))
        assert sum(p.numel() for p in model.parameters()) == official_preact_resnet18_parameters(classes)
    kinds = [type(m).__name__ for m in model.modules()]
    # Stem, 8 blocks of 2 BN + 2 convs, 3 shortcut convs, the head: no BN after the stem, none
    # on the shortcuts, none after the last block.
    assert kinds.count("BatchNorm2d") == 16 and kinds.count("Conv2d") == 1 + 16 + 3 and kinds.count("Linear") == 1
    assert model.body.bn1 is None and model.body.final_bn is None
    # The shared preact_resnet18 differs by exactly that final BN (2 x 512 parameters).
    shared = build_model("preact_resnet18", 100, (3, 32, 32))
    assert sum(p.numel() for p in shared.parameters()) - official_preact_resnet18_parameters(100) == 1024


def official_forward(model, x: torch.Tensor) -> torch.Tensor:
    """The official PreActResNet.forward's features, spelled out with this model's weights."""
    import torch.nn.functional as F

    body = model.body
    out = body.conv1(x)
    for stage in body.layers:
        for block in stage:
            pre = F.relu(block.bn1(out))
            shortcut = block.shortcut(pre) if block.shortcut is not None else out
            out = block.conv2(F.relu(block.bn2(block.conv1(pre)))) + shortcut
    return F.avg_pool2d(out, 4).flatten(1)


@pytest.mark.parametrize("train", [False, True])
def test_lend_preact_resnet18_features_are_the_pooled_last_block_and_can_be_negative(train):
    model = build_model("lend_preact_resnet18", 10, (3, 32, 32)).train(train)
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # ToTensor only: in [0, 1]
    logits, features = model(x, return_features=True)
    assert torch.allclose(features, official_forward(model, x), atol=1e-5)
    assert features.shape == (8, 512) and (features < 0).any()
    assert torch.allclose(logits, model.fc(features), atol=1e-5)
    _, shared = build_model("preact_resnet18", 10, (3, 32, 32)).train(train)(x, return_features=True)
    assert (shared >= 0).all()  # its final BN-ReLU rectifies them
