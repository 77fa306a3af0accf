"""The bootstrapping plugin: its loss on hand-built inputs, and the installed plugin in noisybench.

Run from the noisybench checkout after installing the example:
    .venv/bin/pip install --no-deps --no-build-isolation -e examples/noisybench-bootstrap
    .venv/bin/pytest -q -p no:cacheprovider examples/noisybench-bootstrap/tests
"""
from __future__ import annotations

import importlib.metadata
import math

import pytest
import torch
import torch.nn.functional as F

from noisybench_bootstrap.method import PAPER_BETA, bootstrapping_loss

VERSION = importlib.metadata.version("noisybench-bootstrap")


# --- the core rule on hand-built inputs ---------------------------------------------------------

def test_beta_one_is_plain_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.3, 0.2]])
    labels = torch.tensor([1, 2])
    expected = F.cross_entropy(logits, labels, reduction="none")
    for hard in (False, True):
        assert torch.allclose(bootstrapping_loss(logits, labels, 1.0, hard=hard), expected)


def test_soft_is_cross_entropy_plus_entropy_by_hand():
    # Two classes, q = softmax([ln 3, 0]) = (0.75, 0.25), given label 1:
    # -(0.95 * log 0.25) - 0.05 * (0.75 log 0.75 + 0.25 log 0.25).
    logits = torch.tensor([[math.log(3.0), 0.0]])
    expected = -0.95 * math.log(0.25) - 0.05 * (0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert bootstrapping_loss(logits, torch.tensor([1]), 0.95, hard=False).item() == pytest.approx(expected, rel=1e-6)


def test_hard_mixes_in_the_argmax_class():
    # Same q; the argmax is class 0: -(0.8 * log 0.25) - 0.2 * log 0.75.
    logits = torch.tensor([[math.log(3.0), 0.0]])
    expected = -0.8 * math.log(0.25) - 0.2 * math.log(0.75)
    assert bootstrapping_loss(logits, torch.tensor([1]), 0.8, hard=True).item() == pytest.approx(expected, rel=1e-6)
    # A prediction that agrees with the label leaves plain cross-entropy.
    agreeing = bootstrapping_loss(logits, torch.tensor([0]), 0.8, hard=True)
    assert agreeing.item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_a_fixed_soft_target_changes_the_gradient_not_the_value():
    logits = torch.tensor([[1.0, -0.5, 0.2]], requires_grad=True)
    labels = torch.tensor([2])
    through = bootstrapping_loss(logits, labels, 0.5, hard=False)
    (grad_through,) = torch.autograd.grad(through.sum(), logits)
    fixed = bootstrapping_loss(logits, labels, 0.5, hard=False, detach_target=True)
    (grad_fixed,) = torch.autograd.grad(fixed.sum(), logits)
    assert torch.allclose(through, fixed)
    assert not torch.allclose(grad_through, grad_fixed)


def test_the_paper_betas():
    assert PAPER_BETA == {"soft": 0.95, "hard": 0.8}


# --- the installed plugin inside noisybench ---------------------------------------------------------

def test_noisybench_finds_the_plugin_by_its_entry_point():
    from noisybench.methods.registry import build_hparams, describe_methods, get_method, trial_plugins

    assert get_method("bootstrap").__module__ == "noisybench_bootstrap.method"
    assert describe_methods()["bootstrap"].endswith(f"[plugin noisybench-bootstrap {VERSION}]")
    assert trial_plugins("bootstrap", "digits", "mlp") == f"noisybench-bootstrap=={VERSION}"
    assert build_hparams("bootstrap", {"variant": "hard"}).variant == "hard"


def test_a_bad_variant_is_one_line():
    from noisybench.core.errors import BenchError
    from noisybench.methods.registry import build_hparams

    with pytest.raises(BenchError, match="bootstrap.variant=medium: choose one of soft, hard"):
        build_hparams("bootstrap", {"variant": "medium"})


def test_one_short_trial_is_hashed_with_the_version_and_reports_its_diagnostics(tmp_path):
    from noisybench.bench.sweep import SweepRequest, build_specs
    from noisybench.bench.trainer import run_trial
    from noisybench.results.store import TrialStore

    (spec,) = build_specs(SweepRequest(methods="bootstrap", noise="sym:0.4", seeds="1", epochs=2,
                                       hp=("bootstrap.variant=hard",)))
    assert spec.plugin == f"noisybench-bootstrap=={VERSION}"
    assert spec.to_json()["plugin"] == spec.plugin  # in the JSON, hence in the hash
    outcome = run_trial(spec, tmp_path, device="cpu")
    assert outcome.state == "done", outcome
    last = TrialStore(tmp_path).trial(spec).read_metrics()[-1]
    assert 0.0 <= last["predicted_acc"] <= 1.0
    assert 0.0 <= last["agree_label_precision"] <= 1.0
