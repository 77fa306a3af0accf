"""The trial store: one directory per trial, named by its spec's hash.

The file names and states are noisybench.core.layout's (see there for the directory's picture).
A directory without done.json or failed.json is incomplete: it is resumed (from its
checkpoint) or redone, and never counted in a table.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from noisybench.core.layout import (
    CHECKPOINT_FILE,
    DONE,
    DONE_FILE,
    FAILED,
    FAILED_FILE,
    INCOMPLETE,
    METRICS_FILE,
    MISSING,
    SPEC_FILE,
)
from noisybench.core.spec import TrialSpec


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file, fsync, rename: readers see the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


class TrialDir:
    """One trial's directory."""

    def __init__(self, path: Path):
        self.path = Path(path)

    spec_file = property(lambda self: self.path / SPEC_FILE)
    metrics_file = property(lambda self: self.path / METRICS_FILE)
    checkpoint_file = property(lambda self: self.path / CHECKPOINT_FILE)
    done_file = property(lambda self: self.path / DONE_FILE)
    failed_file = property(lambda self: self.path / FAILED_FILE)

    @property
    def state(self) -> str:
        if self.done_file.exists():
            return DONE
        if self.failed_file.exists():
            return FAILED
        if self.path.exists():
            return INCOMPLETE
        return MISSING

    def read_spec(self) -> dict:
        return json.loads(self.spec_file.read_text())

    def read_metrics(self) -> list[dict]:
        if not self.metrics_file.exists():
            return []
        lines = []
        for raw in self.metrics_file.read_text().splitlines():
            raw = raw.strip()
            if raw:
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    break  # a line cut by a crash ends the log
        return lines

    def read_done(self) -> dict:
        return json.loads(self.done_file.read_text())

    def read_failed(self) -> dict:
        return json.loads(self.failed_file.read_text())

    # --- writing -------------------------------------------------------------------
    def start(self, spec_record: dict, fresh: bool) -> None:
        """Create the directory (wiping it when ``fresh``) and write spec.json."""
        if fresh and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.failed_file.unlink(missing_ok=True)
        atomic_write_json(self.spec_file, spec_record)

    def keep_metrics_through(self, last_epoch: int) -> list[dict]:
        """Drop metric lines after ``last_epoch`` (written after the checkpoint a resume starts from)."""
        kept = [m for m in self.read_metrics() if m["epoch"] <= last_epoch]
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(m) + "\n" for m in kept).encode())
        return kept

    def append_metrics(self, line: dict) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(line) + "\n")

    def mark_done(self, summary: dict) -> None:
        atomic_write_json(self.done_file, {**summary, "state": DONE, "finished_at": time.time()})
        self.checkpoint_file.unlink(missing_ok=True)  # a finished trial needs no resume state

    def mark_failed(self, error: str, traceback_text: str) -> None:
        atomic_write_json(
            self.failed_file,
            {"state": FAILED, "error": error, "traceback": traceback_text, "failed_at": time.time()},
        )


class TrialStore:
    """A results directory of trial directories."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def trial(self, spec: TrialSpec) -> TrialDir:
        return TrialDir(self.root / spec.dirname)

    def state(self, spec: TrialSpec) -> str:
        return self.trial(spec).state

    def trials(self) -> Iterator[TrialDir]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.iterdir()):
            if path.is_dir() and (path / SPEC_FILE).exists():
                yield TrialDir(path)
