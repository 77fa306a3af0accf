"""Reading files that come from outside the code -- a results directory, a download -- as data only.

Unpickling calls whatever callables a pickle names, so whoever can write a checkpoint, a CIFAR
batch or a CIFAR-N label file could run code as the user who reads it, and a checksum beside the
file does not help (anyone can recompute an unkeyed sha256).  Every such file is therefore read by
an unpickler that knows a short list of data-only names and refuses every other one before
anything in the file runs:

- torch files (checkpoints, CIFAR-N's ``.pt``): ``torch.load(weights_only=True)``, torch's own
  unpickler of tensors and plain containers.  CIFAR-N's files hold numpy arrays, so for that call
  alone numpy's array reconstruction is allow-listed (a scoped list, never torch's process-wide one).
- plain pickles (CIFAR's python batches): :class:`DataOnlyUnpickler`, which knows numpy arrays of
  numeric dtypes and the bytes a Python 3 protocol-2 pickle encodes -- what the releases hold.

Lives on the datasets floor so that the loaders, the noise files, the trainer and `bench verify`
all read through the same few functions.
"""
from __future__ import annotations

import pickle
import re
import warnings
from typing import IO, Any

import numpy as np


class NotDataOnly(Exception):
    """A file that names something other than data; the message is one line saying what."""


# The numeric dtypes the releases' arrays use (CIFAR: uint8 pixels; CIFAR-N: int64 labels) and their
# neighbours; object and structured dtypes are refused (an object array is a list of anything).
NUMERIC_DTYPES = tuple(np.dtype(code) for code in "? i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8".split())
# numpy 2 moved numpy.core to numpy._core; files written under either numpy name one of the two.
RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")


def _reconstruct_function():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numeric_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, align, copy)
    if dtype not in NUMERIC_DTYPES:
        raise NotDataOnly(f"names the numpy dtype {dtype}, which is not a plain numeric one")
    return dtype


def _ndarray_reconstruct(subtype, shape, dtype_code):
    if subtype is not np.ndarray:
        raise NotDataOnly(f"rebuilds an array of type {getattr(subtype, '__name__', subtype)!r}")
    return _reconstruct_function()(subtype, shape, dtype_code)


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # A Python 3 protocol-2 pickle writes bytes as _codecs.encode(str, "latin1"); no other codec.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise NotDataOnly(f"encodes with {encoding!r}, not latin1 bytes")
    return text.encode("latin1", errors)


_PICKLE_GLOBALS = {
    **{(module, "_reconstruct"): _ndarray_reconstruct for module in RECONSTRUCT_MODULES},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numeric_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler of plain containers, strings, bytes, numbers and numeric numpy arrays; any other
    name in the file (a function, a class) is refused when it is read, before it could be called."""

    def find_class(self, module: str, name: str) -> Any:
        found = _PICKLE_GLOBALS.get((module, name))
        if found is None:
            raise NotDataOnly(f"names {module}.{name}, which is not data")
        return found

    def persistent_load(self, pid):
        raise NotDataOnly("refers to an outside object (persistent id), which is not data")


def _check_arrays(obj, depth: int = 0) -> None:
    """Every array's dtype must still be numeric after the BUILD steps ran (they set dtypes' state)."""
    if depth > 50:
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype not in NUMERIC_DTYPES:
            raise NotDataOnly(f"holds an array of dtype {obj.dtype}, not a plain numeric one")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _check_arrays(key, depth + 1)
            _check_arrays(value, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _check_arrays(value, depth + 1)


def load_pickle_data_only(handle: IO[bytes], encoding: str = "bytes") -> Any:
    """One pickle read as data (:class:`DataOnlyUnpickler`); NotDataOnly when it names anything else."""
    content = DataOnlyUnpickler(handle, encoding=encoding).load()
    _check_arrays(content)
    return content


def _torch_numpy_globals() -> list:
    reconstruct = _reconstruct_function()
    return [*((reconstruct, f"{module}._reconstruct") for module in RECONSTRUCT_MODULES),
            np.ndarray, np.dtype, *(type(dtype) for dtype in NUMERIC_DTYPES)]


_REFUSAL = re.compile(r"WeightsUnpickler error:\s*(.*?)(?:\s*Please use|\n\n|$)", re.S)
_GLOBAL = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)")
_OPERAND = re.compile(r"Unsupported operand (\d+)")
# What the weights-only unpickler says when a file names code (a function, a class, an outside object).
_NAMES_CODE = ("GLOBAL", "Can only build", "Can only create new object", "unrecognized function", "persistent_load")


def refusal_reason(error: BaseException) -> str | None:
    """Why torch's weights-only unpickler refused a file that names code or uses pickle opcodes a
    torch file never holds, in one line ("names builtins.open, which is not data"); None when
    ``error`` is something else (a file cut short, bytes that are no pickle at all: damage)."""
    if not isinstance(error, pickle.UnpicklingError) or "Weights only load failed" not in str(error):
        return None
    match = _REFUSAL.search(str(error))
    inner = " ".join((match.group(1) if match else "").split()).rstrip(".")
    if (named := _GLOBAL.search(inner)) is not None:
        return f"names {named.group(1)}, which is not data"
    if any(marker in inner for marker in _NAMES_CODE):
        return inner
    if (operand := _OPERAND.search(inner)) is not None:
        import pickletools

        name = {op.code: op.name for op in pickletools.opcodes}.get(chr(int(operand.group(1))))
        # A real pickle opcode that torch's writer never emits (protocol 4's FRAME, STACK_GLOBAL):
        # a pickle made elsewhere, not a torch file of data.  Any other byte is damage.
        return f"is a pickle using {name}, which a torch file of data never holds" if name else None
    return None


def torch_load_data_only(source, map_location=None, numpy_arrays: bool = False) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers, and numpy arrays of numeric
    dtypes when ``numpy_arrays``.  NotDataOnly (one line) when the file names anything else;
    other errors (a damaged file) pass through."""
    import torch  # here: the loaders of files without torch do not pay its start-up

    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the refusal below says what matters.
            warnings.simplefilter("ignore", UserWarning)
            if numpy_arrays:
                with torch.serialization.safe_globals(_torch_numpy_globals()):
                    content = torch.load(source, map_location=map_location, weights_only=True)
            else:
                content = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = refusal_reason(err)
        if reason is not None:
            raise NotDataOnly(reason) from None
        if (inner := _REFUSAL.search(str(err))) is not None:  # damage: torch's paragraph cut to its one fact
            raise pickle.UnpicklingError(" ".join(inner.group(1).split()) or "not a torch file") from None
        raise
    if numpy_arrays:
        _check_arrays(content)
    return content
