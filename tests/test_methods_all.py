"""Every registered method, the same checks: three steps through the shared trainer on digits.

Generic on purpose (no per-method cases): a new method passes by implementing the Method
interface, or fails here with the reason.
"""
from __future__ import annotations

import inspect
import math

import pytest
import torch

from noisybench.bench.trainer.loop import Trainer
from noisybench.bench.trainer.setup import setup_trial
from noisybench.core.spec import TrialSpec
from noisybench.methods import get_method, method_names

STEPS = 3
BATCH = 32


def tiny_setup(method: str):
    # sym:0.4 gives every method a known noise rate (selection methods derive their forget rate from it).
    spec = TrialSpec(dataset="digits", method=method, noise="sym:0.4", seed=0, protocol="quick",
                     epochs=2, batch_size=BATCH)
    return setup_trial(spec, torch.device("cpu"))


def three_steps(trainer: Trainer) -> list[torch.Tensor]:
    """The trainer's own epoch 0 (the method's plan, its batches, backward, its optimisers), stopped
    after three steps; each step's output checked on the way."""
    losses, step = [], trainer.method.train_step

    def checked_step(batch, epoch):
        out = step(batch, epoch)
        for name, weight in out.selected.items():
            assert weight.shape == (len(batch),), f"selected[{name!r}] must hold one weight per sample"
        for name, value in out.stats.items():
            assert value.numel() == 1, f"stats[{name!r}] must be a scalar tensor"
        losses.append(out.loss.detach())
        return out

    trainer.method.train_step = checked_step
    trainer.train_epoch(0, max_steps=STEPS)
    return losses


@pytest.mark.parametrize("name", method_names())
def test_three_steps_finite_loss_shapes_and_state_dict_round_trip(name):
    setup = tiny_setup(name)
    trainer = Trainer(setup)
    losses = three_steps(trainer)
    assert len(losses) == STEPS
    assert all(math.isfinite(float(loss)) for loss in losses), f"{name}: non-finite loss {losses}"

    method = trainer.method
    method.eval()
    images = trainer.data.to_input(trainer.data.test_images[:17])
    with torch.no_grad():
        logits = method.predict(images)
        extra = method.predict_extra(images)
    num_classes = setup.dataset.num_classes
    assert logits.shape == (17, num_classes)
    for key, value in extra.items():
        assert value.shape == (17, num_classes), f"predict_extra()[{key!r}]"

    # A fresh method of the same trial, loaded from the trained one's state_dict, predicts the same.
    fresh = tiny_setup(name).method
    fresh.load_state_dict(method.state_dict())
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh.predict(images), logits)
        for key, value in fresh.predict_extra(images).items():
            assert torch.equal(value, extra[key])
    # Training moved the weights: the round trip is not a comparison of two untouched inits.
    untouched = tiny_setup(name).method.eval()
    with torch.no_grad():
        assert not torch.equal(untouched.predict(images), logits)


def test_the_method_interface_has_at_most_five_optional_hooks_each_used_by_two_methods():
    """Issue 23: beyond train_step and predict, at most five hooks, none serving a single method
    (what a method is rather than does is a class-variable declaration, not a hook)."""
    import torch.nn as nn

    from noisybench.methods.base import Method

    hooks = sorted(name for name, value in vars(Method).items()
                   if not name.startswith("_") and callable(getattr(Method, name)) and not hasattr(nn.Module, name)
                   and name not in ("train_step", "predict"))
    assert hooks == ["epoch_plan", "networks", "on_epoch_end", "predict_extra", "resolve"]

    def overrides(cls, hook):
        mine, base = inspect.getattr_static(cls, hook), inspect.getattr_static(Method, hook)
        return getattr(mine, "__func__", mine) is not getattr(base, "__func__", base)

    users = {hook: [name for name in method_names() if overrides(get_method(name), hook)] for hook in hooks}
    assert all(len(names) >= 2 for names in users.values()), users
