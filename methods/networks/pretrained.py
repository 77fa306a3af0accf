"""Initial weights from a local file (``--pretrained``): read without running pickled code and
copied into every network but its classifier ``fc``."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from noisybench.core.errors import BenchError
from noisybench.methods.networks.registry import build_model

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
