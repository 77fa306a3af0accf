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
