"""The GPU's arithmetic on the CPU: every registered method trains a few steps with the settings
a CUDA run uses by default -- bf16 autocast, channels_last, fused optimisers -- so that the code
paths a first CIFAR run on a GPU takes are exercised here, where every test runs.  (cuDNN's
autotuner is the one GPU setting the CPU has no counterpart for; it only picks kernels.)

Tolerance, stated: from the same weights on the same batch, the bf16 step's loss is within 3%
(relative) of the fp32 step's; after the same 6 steps the test accuracies are within 0.15.
"""
from __future__ import annotations

import math

import pytest
import torch

from noisybench.bench.speed.loops import TrainerLoop
from noisybench.bench.speed.options import SpeedOptions
from noisybench.bench.speed.synthetic import synthetic_dataset
from noisybench.bench.trainer.arithmetic import Arithmetic
from noisybench.core.errors import BenchError
from noisybench.methods import method_names
from noisybench.methods.lend import dilute

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

GPU_COMBINATION = dict(precision="bf16", memory_format="channels_last", fused=True)
STEPS = 6


def loop_for(method: str, **arithmetic) -> TrainerLoop:
    # A conv network on CIFAR-shaped images, so that channels_last and bf16 convolutions are real.
    options = SpeedOptions(model="cnn", batch_size=16, steps=STEPS, warmup=0, train_size=128, eval_images=32,
                           epoch=2, reference=False, **arithmetic)
    return TrainerLoop(method, options, synthetic_dataset(train_size=128, test_size=32), torch.device("cpu"))


def record_losses(method) -> list[float]:
    """Wrap ``method.train_step`` so that each step's loss is kept (read on the host: a CPU test)."""
    losses, step = [], method.train_step

    def recording(batch, epoch):
        out = step(batch, epoch)
        losses.append(float(out.loss.detach()))
        return out

    method.train_step = recording
    return losses


def test_the_device_defaults_are_as_before():
    assert Arithmetic.resolve(torch.device("cpu")) == Arithmetic("fp32", "contiguous", False, False)
    assert Arithmetic.resolve(torch.device("cuda")) == Arithmetic("bf16", "channels_last", True, True)


def test_settings_the_device_cannot_take_are_one_line():
    with pytest.raises(BenchError, match="--autotune on: .* needs a CUDA device"):
        Arithmetic.resolve(torch.device("cpu"), autotune=True)


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_with_the_gpu_combination_on_the_cpu(method):
    gpu_like = loop_for(method, **GPU_COMBINATION)
    data, trainer = gpu_like.trainer.data, gpu_like.trainer
    assert data.arithmetic == Arithmetic("bf16", "channels_last", True, False)
    assert all(group.get("fused") for group in trainer.optimizer.param_groups)
    # Batches reach the networks in channels_last, and the conv weights are stored that way.
    batch = next(trainer.training_batches(0, trainer.generator("augment", 0)))
    assert batch.images.is_contiguous(memory_format=torch.channels_last)
    convs = [m for net in trainer.method.networks() for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    # Under autocast the forward runs in bf16; logits come out (N, C), the loss is a finite scalar.
    with data.arithmetic.autocast(data.device):
        logits = trainer.method.predict(batch.images)
        out = trainer.method.train_step(batch, 0)
    assert logits.shape == (len(batch), 10) and logits.dtype == torch.bfloat16
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    trainer.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in trainer.method.parameters())

    # The same weights and the same batches in both precisions (batch order and augmentation are
    # streams of (dataset, model, seed), not of the spec, whose hash holds the precision): only the
    # arithmetic differs.
    bf16, fp32 = loop_for(method, **GPU_COMBINATION), loop_for(method, precision="fp32")
    bf16.trainer.method.load_state_dict(fp32.trainer.method.state_dict())
    losses, accuracy = {}, {}
    for name, loop in (("bf16", bf16), ("fp32", fp32)):
        losses[name] = record_losses(loop.trainer.method)
        loop.train(STEPS)  # the trainer's own epoch 2, stopped after STEPS steps: the same batches in both
        accuracy[name] = loop.trainer.evaluate()["test_acc"]
    assert len(losses["bf16"]) == len(losses["fp32"]) == STEPS
    assert all(math.isfinite(v) for v in losses["bf16"])
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=0.03)
    assert abs(accuracy["bf16"] - accuracy["fp32"]) <= 0.15


def test_lend_solves_in_fp32_under_cpu_autocast():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(48, 16, generator=g)
    given = torch.nn.functional.one_hot(torch.randint(0, 5, (48,), generator=g), 5).float()
    reference = dilute(features, given).labels
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = dilute(features.bfloat16(), given)
    assert result.labels.dtype == torch.float32
    assert torch.allclose(result.labels, dilute(features.bfloat16().float(), given).labels, atol=1e-5)
    assert (result.labels.argmax(1) == reference.argmax(1)).float().mean() > 0.9


def test_a_torch_without_fused_kernels_is_told_in_one_line(monkeypatch):
    """Older torch builds lack fused optimisers on some devices: a one-line error naming the fix."""
    from noisybench.bench.trainer.protocols import resolve_recipe
    from noisybench.bench.trainer.optim import build_optimizer

    class OldSGD(torch.optim.SGD):
        def __init__(self, params, fused=None, **kwargs):
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", OldSGD)
    recipe = resolve_recipe("lend-paper", "cifar10", "standard")
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert isinstance(build_optimizer(recipe, params, fused=False), OldSGD)
    with pytest.raises(BenchError, match=r"--fused on: torch .* has no fused sgd on cpu .*use --fused off"):
        build_optimizer(recipe, params, fused=True)
