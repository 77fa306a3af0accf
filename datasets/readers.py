"""Helpers shared by the real-dataset loaders: one-line errors, text lists, JPEG decoding.

Every problem with a user's data files becomes a :class:`bench.errors.BenchError`
whose message is ONE line naming the path, what was expected there and where to
get it, because the CLI prints such errors verbatim and exits with status 2.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from noisybench.core.errors import BenchError


class MissingDataError(BenchError):
    """A dataset file or folder is absent (``bench data check`` reports "missing")."""


class DamagedDataError(BenchError):
    """A dataset file is present but unreadable or wrong (``bench data check``: "damaged")."""


def one_line(text: object) -> str:
    """Collapse any exception text (PIL and pickle messages span lines) to one line."""
    return " ".join(str(text).split())


def missing_error(dataset: str, path: Path, expected: str, how_to_get: str) -> MissingDataError:
    return MissingDataError(f"{dataset} not found: expected {expected} in {path}; {how_to_get}")


def damaged_error(dataset: str, path: Path, problem: str, how_to_get: str) -> DamagedDataError:
    return DamagedDataError(f"{dataset} file {path} is damaged ({one_line(problem)}); {how_to_get}")


def require_files(dataset: str, directory: Path, names: Sequence[str], how_to_get: str) -> None:
    """Raise one error listing every one of ``names`` that ``directory`` lacks."""
    if not directory.is_dir():
        raise missing_error(dataset, directory, ", ".join(names), how_to_get)
    absent = [name for name in names if not (directory / name).exists()]
    if absent:
        raise missing_error(dataset, directory, ", ".join(absent), how_to_get)


def read_lines(path: Path, dataset: str, how_to_get: str) -> list[str]:
    """The non-blank lines of a UTF-8 text file, without their line ends."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise missing_error(dataset, path.parent, path.name, how_to_get) from None
    except (OSError, UnicodeDecodeError) as err:
        raise damaged_error(dataset, path, str(err), how_to_get) from None
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def default_num_threads() -> int:
    """Decoding threads: PIL releases the GIL while decoding, so threads scale to the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def decode_rgb(path: Path) -> np.ndarray:
    """One image file as an (H, W, 3) uint8 array; raises OSError/ValueError when unreadable."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_images_fixed_size(
    paths: Sequence[Path],
    height: int,
    width: int,
    dataset: str,
    how_to_get: str,
    num_threads: int | None = None,
) -> np.ndarray:
    """Decode same-sized RGB images into one (N, 3, H, W) uint8 array, in ``paths`` order.

    The output array is allocated once and each worker writes its own rows, so
    peak memory is the decoded dataset and nothing more.
    """
    out = np.empty((len(paths), 3, height, width), dtype=np.uint8)

    def decode_into(position: int) -> None:
        path = paths[position]
        try:
            pixels = decode_rgb(path)
        except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
            raise damaged_error(dataset, path, f"cannot decode image: {err}", how_to_get) from None
        if pixels.shape != (height, width, 3):
            raise damaged_error(
                dataset, path, f"image is {pixels.shape[1]}x{pixels.shape[0]}, expected {width}x{height}",
                how_to_get,
            )
        out[position] = pixels.transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=num_threads or default_num_threads()) as pool:
        # list() re-raises the first worker exception here, in the caller's thread.
        list(pool.map(decode_into, range(len(paths))))
    return out
