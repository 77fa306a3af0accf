"""The --results directory of every command: one check, one expansion of ``~``."""
from __future__ import annotations

from pathlib import Path

from noisybench.core.errors import BenchError


def check_results_path(results: str, must_exist: bool = False) -> Path:
    """The --results path with ``~`` expanded, which every command reads and writes.  Refuses a
    --results that is, or lies under, something other than a directory, before any trial is
    written (mkdir would fail there with a traceback halfway through the sweep)."""
    path = Path(results).expanduser()
    for place in (path, *path.parents):
        if place.exists() and not place.is_dir():
            where = "is a file" if place == path else f"lies under {place}, which is a file"
            fix = "the results directory of a `bench run`" if must_exist else "a directory (new or existing)"
            raise BenchError(f"--results {results} {where}, not a directory; point --results at {fix}, "
                             f"e.g. --results runs")
        if place.exists():
            break
    if must_exist and not path.is_dir():
        raise BenchError(f"--results {results}: no such directory; run `bench run` first or point at a results dir")
    return path
