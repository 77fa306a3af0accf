"""Where a number came from: noisybench's version and, run from a checkout, its git commit."""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from noisybench.core import __version__

CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root, for an editable install


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's HEAD commit (with '+dirty' when files differ from it); None when noisybench
    is not running from a git checkout (an installed wheel) or git is not there."""
    if not (CHECKOUT / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def provenance() -> dict:
    """For spec.json: what produced a trial."""
    return {"version": __version__, "git_commit": git_commit()}
