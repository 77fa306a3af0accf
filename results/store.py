"""The trial store: one directory per trial, named by its spec's hash.

The file names and states are noisybench.core.layout's (see there for the directory's picture).
A directory without done.json or failed.json is incomplete: it is resumed (from its
checkpoint) or redone, and never counted in a table.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

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
from noisybench.results.lease import LEASE_FILE, LOCK_FILE

TMP_MARK = ".tmp"  # atomic_write_bytes' temporary files: .<name>.tmp<pid>
CHECKPOINT_MODE = 0o600


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temporary file, fsync, rename: readers see the old file or the new, never half.
    The temporary file is removed on every failure (a full disk, a read-only directory).  ``mode``
    sets the file's permissions whatever the umask (None: the umask's)."""
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        # A new file, never through whatever already has the name (a link planted in a shared directory).
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        if mode is not None:
            os.fchmod(fd, mode)  # the file was created under the umask; this is not
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# A checkpoint file is CHECKED_MAGIC, one line of JSON metadata (e.g. its epoch, for `bench
# status`), the sha256 of that line and the payload (32 bytes), then the payload: a damaged
# checkpoint (flipped bytes, a cut file) is recognised before torch ever reads it.  The sha256 is
# not keyed, so it says nothing about who wrote the file: a forged checkpoint is stopped by reading
# every payload as data only (results/checkpoints.py), never by this header.
CHECKED_MAGIC = b"noisybench-checked-v1\n"


def write_checked(path: Path, payload: bytes, meta: dict | None = None, mode: int | None = None) -> None:
    line = (json.dumps(meta or {}, sort_keys=True) + "\n").encode()
    atomic_write_bytes(path, CHECKED_MAGIC + line + hashlib.sha256(line + payload).digest() + payload, mode)


def _split_checked(data: bytes) -> tuple[bytes, bytes, bytes] | None:
    if not data.startswith(CHECKED_MAGIC):
        return None
    end = data.find(b"\n", len(CHECKED_MAGIC))
    if end < 0 or len(data) < end + 1 + 32:
        return None
    line, rest = data[len(CHECKED_MAGIC):end + 1], data[end + 1:]
    return line, rest[:32], rest[32:]


def read_checked(path: Path) -> bytes | None:
    """The payload of a file written by :func:`write_checked`; None when it is missing, damaged or
    not one of ours (an older noisybench's unchecked checkpoint cannot be verified either)."""
    try:
        parts = _split_checked(Path(path).read_bytes())
    except OSError:
        return None
    if parts is None:
        return None
    line, digest, payload = parts
    return payload if hashlib.sha256(line + payload).digest() == digest else None


def read_checked_meta(path: Path) -> dict | None:
    """The metadata line of a checked file, read without the (possibly large) payload and not verified."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(CHECKED_MAGIC) + 4096)
        meta = json.loads(head[len(CHECKED_MAGIC):].split(b"\n", 1)[0]) if head.startswith(CHECKED_MAGIC) else None
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


class DamagedTrial(Exception):
    """A trial directory whose files cannot be trusted; the message is one line naming the problem."""


class TrialDir:
    """One trial's directory."""

    def __init__(self, path: Path, fence: Callable[[], None] | None = None):
        self.path = Path(path)
        # The writer's lease check (TrialLease.check), called before every write: a writer that was
        # suspended and lost its lease to another process raises there instead of writing.
        self.fence = fence

    def check_fence(self) -> None:
        if self.fence is not None:
            self.fence()

    spec_file = property(lambda self: self.path / SPEC_FILE)
    metrics_file = property(lambda self: self.path / METRICS_FILE)
    checkpoint_file = property(lambda self: self.path / CHECKPOINT_FILE)
    # The checkpoint before the last one: the last good state when the newest is damaged.
    previous_checkpoint_file = property(lambda self: self.path / f"previous-{CHECKPOINT_FILE}")
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

    def _read_json(self, path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not valid JSON (cut short or damaged)"
            raise DamagedTrial(f"{path}: {reason}") from None
        if not isinstance(data, dict):
            raise DamagedTrial(f"{path}: not a JSON object")
        return data

    def read_spec(self) -> dict:
        """spec.json, or DamagedTrial naming it in one line."""
        record = self._read_json(self.spec_file)
        if not isinstance(record.get("spec"), dict):
            raise DamagedTrial(f"{self.spec_file}: has no \"spec\" record")
        return record

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

    def read_metrics_strict(self) -> list[dict]:
        """Every metrics line, or DamagedTrial: a finished trial's log has no cut or garbage line."""
        try:
            text = self.metrics_file.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise DamagedTrial(f"{self.metrics_file}: {getattr(err, 'strerror', None) or 'unreadable'}") from None
        lines = []
        for number, raw in enumerate(text.splitlines(), 1):
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                raise DamagedTrial(f"{self.metrics_file}: line {number} is not JSON (cut short or damaged)") from None
            if not isinstance(line, dict) or not isinstance(line.get("epoch"), int) or "test_acc" not in line:
                raise DamagedTrial(f"{self.metrics_file}: line {number} is not an epoch's metrics")
            lines.append(line)
        return lines

    def read_done(self) -> dict:
        return self._read_json(self.done_file)

    def read_failed(self) -> dict:
        return self._read_json(self.failed_file)

    def remove_leftovers(self) -> None:
        """Temporary files of writers that were killed mid-write (nothing else removes them)."""
        self.check_fence()
        if self.path.is_dir():
            for path in self.path.iterdir():
                if path.name.startswith(".") and TMP_MARK in path.name:
                    path.unlink(missing_ok=True)

    # --- writing -------------------------------------------------------------------
    def start(self, spec_record: dict, fresh: bool) -> None:
        """Create the directory (emptying it when ``fresh``) and write spec.json.  The lease files
        stay: the caller holds the lease, and removing its lock file would let a second writer in."""
        self.check_fence()
        if fresh and self.path.exists():
            for path in self.path.iterdir():
                if path.name in (LEASE_FILE, LOCK_FILE):
                    continue
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self.failed_file.unlink(missing_ok=True)
        atomic_write_json(self.spec_file, spec_record)

    def keep_metrics_through(self, last_epoch: int) -> bool:
        """Keep exactly the metrics lines of epochs 1..``last_epoch`` (those before the checkpoint a
        resume starts from).  False, with nothing kept, when they are not all there -- a gap or a
        repeat means the log does not belong to that checkpoint, and the trial must restart."""
        self.check_fence()
        kept = [m for m in self.read_metrics() if m.get("epoch", 0) <= last_epoch]
        whole = [m.get("epoch") for m in kept] == list(range(1, last_epoch + 1))
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(m) + "\n" for m in kept).encode() if whole else b"")
        return whole

    def save_checkpoint(self, payload: bytes, epoch: int) -> None:
        """The newest checkpoint, checksummed; the one before it is kept as the last good state."""
        self.check_fence()
        if self.checkpoint_file.exists():
            os.replace(self.checkpoint_file, self.previous_checkpoint_file)
        # The owner's alone: a resume state is nobody else's to read or replace.
        write_checked(self.checkpoint_file, payload, {"epoch": epoch}, mode=CHECKPOINT_MODE)

    def checkpointed_epoch(self) -> int | None:
        """The epoch the newest checkpoint says it holds (unverified: for display)."""
        for path in self.checkpoints():
            meta = read_checked_meta(path)
            if meta and isinstance(meta.get("epoch"), int):
                return meta["epoch"]
        return None

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, newest first."""
        return [p for p in (self.checkpoint_file, self.previous_checkpoint_file) if p.exists()]

    def drop_checkpoints(self) -> None:
        self.check_fence()
        for path in (self.checkpoint_file, self.previous_checkpoint_file):
            path.unlink(missing_ok=True)

    def append_metrics(self, line: dict) -> None:
        self.check_fence()
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(line) + "\n")

    def mark_done(self, summary: dict) -> None:
        """done.json, certifying what it covers: the number of epochs and the sha256 of
        metrics.jsonl and spec.json as they are now (results/integrity.py checks them)."""
        certified = {"epochs": len(self.read_metrics_strict()), "metrics_sha256": file_sha256(self.metrics_file),
                     "spec_sha256": file_sha256(self.spec_file)}
        self.check_fence()
        atomic_write_json(self.done_file, {**summary, **certified, "state": DONE, "finished_at": time.time()})
        self.drop_checkpoints()  # a finished trial needs no resume state

    def mark_failed(self, error: str, traceback_text: str) -> None:
        self.check_fence()
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
        """Every trial directory: those with a spec.json, and those that lost it but still hold a
        trial's files (so that readers can name them instead of silently not seeing them)."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.iterdir()):
            if path.is_dir() and not path.name.startswith(".") and any(
                    (path / name).exists() for name in (SPEC_FILE, DONE_FILE, METRICS_FILE)):
                yield TrialDir(path)
