"""The --results directory of every command: one check, one expansion of ``~``."""
from __future__ import annotations

import os
import stat
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


# Whoever can write a folder can replace what is in it: a job folder's pickles are what submitit's
# workers run, so it must be writable by its owner alone.
OTHERS_WRITE = 0o022


def private_folder(folder: Path, what: str) -> Path:
    """``folder`` created readable and writable by its owner alone (0700, whatever the umask), or,
    when it exists, checked: a folder that another user owns or that group/others can write is
    refused in one line (BenchError) before anything is written into it."""
    folder = Path(folder)
    if check_private_folder(folder, what) is None:
        try:
            folder.mkdir(parents=True)
        except FileExistsError:  # another run made it meanwhile: check it as found
            check_private_folder(folder, what)
            return folder
        folder.chmod(0o700)  # mkdir's mode is cut by the umask; chmod is not
    return folder


def check_private_folder(folder: Path, what: str) -> Path | None:
    """``private_folder``'s checks of an existing folder, writing nothing; None when it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return None
    info = folder.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise BenchError(f"{what} {folder} is not a directory; remove it or point the launcher elsewhere")
    if info.st_uid != os.getuid():
        raise BenchError(f"{what} {folder} belongs to another user (uid {info.st_uid}), who decides what its jobs "
                         "run; use a folder of your own (e.g. another --results, or --slurm-folder)")
    if info.st_mode & OTHERS_WRITE:
        raise BenchError(f"{what} {folder} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}), who "
                         f"could replace the jobs it runs; chmod go-w {folder} (or chmod 700), then run again")
    return folder


def others_can_write(folder: Path) -> bool:
    """Whether group or others have write permission on ``folder`` (False when it does not exist)."""
    try:
        return bool(Path(folder).stat().st_mode & OTHERS_WRITE)
    except OSError:
        return False
