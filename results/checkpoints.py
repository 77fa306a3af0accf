"""Checkpoints hold data only: tensors and plain containers, read back without running code.

A checkpoint lives in the results directory, which others may be able to write (a lab's shared
group directory, an archive sent to be completed), and its checksum header is no defence: anyone
can recompute an unkeyed sha256.  So a checkpoint is read with torch's weights-only unpickler
(datasets/dataonly.py) and nothing is allow-listed for it; what the trainer writes is checked
before it is saved, so that every checkpoint it writes is one it can read back.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from noisybench.datasets.dataonly import NotDataOnly, torch_load_data_only
from noisybench.results.store import read_checked

# What torch's weights-only unpickler rebuilds without an allow-list, besides tensors and containers.
_PLAIN = (str, bytes, bytearray, bool, int, float, complex, type(None), torch.Size, torch.dtype, torch.device)


class NotDataState(TypeError):
    """A state to be checkpointed that holds an object torch's weights-only unpickler refuses."""


def check_data_only(state, what: str) -> None:
    """NotDataState naming the first entry of ``state`` that is not a tensor, a plain container
    or a plain value: a checkpoint holding it could not be read back as data."""
    def walk(obj, where: str) -> None:
        if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
            return
        if isinstance(obj, dict):  # dict and OrderedDict
            for key, value in obj.items():
                walk(key, where)
                walk(value, f"{where}[{key!r}]")
        elif type(obj) in (list, tuple, set):
            for i, value in enumerate(obj):
                walk(value, f"{where}[{i}]")
        else:
            raise NotDataState(
                f"{what} holds a {type(obj).__module__}.{type(obj).__qualname__} at {where}; checkpoints hold only "
                "tensors, plain containers and plain values (read back without running code): convert it in the "
                "method's get_extra_state/set_extra_state (an RNG state or array to a tensor, a dataclass to a dict)")
    walk(state, "state")


def read_checkpoint_payload(payload: bytes, map_location=None):
    """A checkpoint's payload (its checksum already verified) as data; NotDataOnly when it names
    anything but tensors and plain containers, before anything in it runs."""
    return torch_load_data_only(io.BytesIO(payload), map_location=map_location)


def checkpoint_problem(path: Path) -> str | None:
    """Why ``bench run`` would refuse this checkpoint, in one line, or None when it would load it.
    Only a checkpoint that names code is reported: a damaged one is already said at resume."""
    payload = read_checked(path)
    if payload is None:
        return None
    try:
        read_checkpoint_payload(payload, map_location="cpu")
    except NotDataOnly as refusal:
        return f"{path.name} is not a data-only checkpoint (it {refusal})"
    except Exception:  # noqa: BLE001 -- damaged: resume says so and falls back
        return None
    return None
