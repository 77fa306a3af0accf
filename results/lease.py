"""One writer per trial: the lease a process holds while it trains a trial.

Two `bench run`s of one sweep (a rerun while a SLURM job still runs, two terminals, a local
worker whose controller was killed) must never train the same trial: their metrics lines would
interleave and the table would average a trial trained twice.  A process therefore takes the
trial's lease before it writes anything there, and holds it to the end:

- ``lease.lock``: an advisory ``flock`` held for the whole trial.  The kernel drops it when the
  holder dies (SIGKILL included), so on one machine -- and on cluster filesystems whose locks are
  global (Lustre, GPFS, NFSv4) -- a held lock is proof of a live holder.
- ``lease.json``: who holds it (host, pid and the pid's start time, SLURM job id) and a heartbeat
  refreshed every ``HEARTBEAT_S`` by a daemon thread.  It is what another host sees where locks
  are not shared: a lease whose heartbeat is older than ``STALE_AFTER_S`` is stale and may be
  taken over; on the holder's own host a holder whose pid is gone (or reused) is dead at once.

Fencing.  Where locks are not shared, a holder that is suspended (SIGSTOP, a paused VM, a
suspended SLURM job, a long NFS stall) for longer than ``STALE_AFTER_S`` is rightly taken for dead
and its trial taken over; when it wakes it must not write another line there.  So every write a
trial makes proves first that lease.json still names this lease's token (:meth:`TrialLease.check`,
one small read per epoch-level write), and the heartbeat checks before it refreshes, so that a
woken holder never overwrites the new holder's lease.  A holder that finds another token (or none:
the new holder finished and let go) raises :class:`LeaseLost` and leaves the trial alone.  What
no read-then-write can close is a suspension exactly between the check and the write it guards
(microseconds against an epoch); a line written then breaks the log's 1..N epochs, which
results/integrity.py refuses to count, and the trial is redone.

Nothing here reads or writes anything but those two files.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

try:  # advisory locks where the platform has them; the heartbeat alone elsewhere
    import fcntl
except ImportError:  # pragma: no cover -- Windows
    fcntl = None

LEASE_FILE = "lease.json"
LOCK_FILE = "lease.lock"
HEARTBEAT_S = 15.0
# A holder on another host that has not refreshed its heartbeat for this long is taken to be dead.
STALE_AFTER_S = 180.0


class LeaseLost(Exception):
    """Another process took this process's lease on a trial (``holder``: who, as lease.json says;
    None when it has let go again).  The trial is its now: stop without touching the directory."""

    def __init__(self, trial_dir: Path, holder: "Holder | None"):
        self.trial_dir, self.holder = Path(trial_dir), holder
        taker = holder.describe() if holder is not None else "another process (which has let go of it since)"
        super().__init__(f"lost the lease on {self.trial_dir.name} to {taker} while suspended; left to it")


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux); None where unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux /proc), so that a reused pid is not mistaken
    for the holder; None where it cannot be read."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None  # field 22, counted after the command name


def pid_alive(pid: int, start_time: str | None) -> bool:
    """Whether ``pid`` is a running process (a zombie -- killed, not yet reaped -- is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    fields = _proc_stat(pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):
            return False
        if start_time is not None and fields[19] != start_time:
            return False  # the pid was reused by a new process
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as lease.json says."""

    host: str
    pid: int
    start_time: str | None
    job_id: str | None
    heartbeat: float
    token: str

    @classmethod
    def me(cls) -> "Holder":
        return cls(host=socket.gethostname(), pid=os.getpid(), start_time=process_start_time(os.getpid()),
                   job_id=os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
                   heartbeat=time.time(), token=uuid.uuid4().hex)

    def describe(self) -> str:
        job = f", job {self.job_id}" if self.job_id else ""
        return f"pid {self.pid} on {self.host}{job}"

    def is_alive(self, now: float | None = None) -> bool:
        """Best judgement without the lock: on this host the process itself; elsewhere the heartbeat."""
        if self.host == socket.gethostname():
            return pid_alive(self.pid, self.start_time)
        return (now if now is not None else time.time()) - self.heartbeat < STALE_AFTER_S


def _still_named(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not unlinked or replaced)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def read_holder(trial_dir: Path) -> Holder | None:
    """The holder lease.json names, or None (no lease, or one that cannot be read)."""
    try:
        data = json.loads((Path(trial_dir) / LEASE_FILE).read_text())
        return Holder(host=str(data["host"]), pid=int(data["pid"]), start_time=data.get("start_time"),
                      job_id=data.get("job_id"), heartbeat=float(data["heartbeat"]), token=str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_holder(trial_dir: Path) -> Holder | None:
    """The live holder of a trial's lease (None: nobody trains it now)."""
    holder = read_holder(trial_dir)
    if holder is None or holder.token == _held_tokens.get(str(Path(trial_dir).resolve())):
        return None
    return holder if holder.is_alive() else None


_held_tokens: dict[str, str] = {}  # trial dir -> token of the leases this process holds


def wait_while_held(trial_dir: Path, poll_s: float = 1.0, max_poll_s: float = 10.0) -> None:
    """Return once no live process holds the trial (it finished, failed, or its holder died)."""
    delay = poll_s
    while live_holder(trial_dir) is not None:
        time.sleep(delay)
        delay = min(max_poll_s, delay * 1.5)


class TrialLease:
    """The lease of one trial directory; ``acquire`` or see who holds it, ``release`` at the end."""

    def __init__(self, trial_dir: Path, heartbeat_s: float | None = None):
        self.dir = Path(trial_dir)
        # Read when the lease is made, not when this module was imported: a test may shorten it.
        self.heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.me = Holder.me()
        self.holder: Holder | None = None  # who held it when acquire() failed
        self._lock_fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: LeaseLost | None = None  # set once another process was found holding it

    def acquire(self) -> bool:
        """Take the lease (True), or leave everything as it is and set ``holder`` (False)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        locked = False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    self.holder = read_holder(self.dir) or Holder("another process", 0, None, None, 0.0, "")
                    return False
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    os.close(fd)
                    raise
                # No locks on this filesystem: the heartbeat alone decides.
            else:
                locked = True
                if not _still_named(fd, self.dir / LOCK_FILE):
                    # The directory was removed (remove_directory) between our open and our lock:
                    # this lock guards nothing any more; take the lock of the directory as it is now.
                    os.close(fd)
                    return self.acquire()
        current = read_holder(self.dir)
        # With the lock in hand, a holder on this host is certainly gone (its lock would still be
        # held); one on another host may hold a lock this filesystem does not share with us.
        same_host = current is not None and current.host == self.me.host
        if current is not None and not (locked and same_host) and current.is_alive():
            # Held by a live process the lock cannot see (another host on a filesystem without
            # shared locks): respect its lease until its heartbeat goes stale.
            os.close(fd)
            self.holder = current
            return False
        self._lock_fd = fd
        self._write()
        _held_tokens[str(self.dir.resolve())] = self.me.token
        self._thread = threading.Thread(target=self._beat, name=f"lease {self.dir.name}", daemon=True)
        self._thread.start()
        return True

    def check(self) -> None:
        """Raise LeaseLost unless lease.json still names this lease (one small read).  Called before
        every write to the trial: a holder suspended past the stale limit may have lost the trial."""
        if self.lost is None:
            current = read_holder(self.dir)
            if current is not None and current.token == self.me.token:
                return
            self.lost = LeaseLost(self.dir, current)
            self._stop.set()  # the heartbeat must not write over the new holder's lease
        raise self.lost

    def _write(self) -> None:
        record = {"host": self.me.host, "pid": self.me.pid, "start_time": self.me.start_time,
                  "job_id": self.me.job_id, "heartbeat": time.time(), "token": self.me.token}
        tmp = self.dir / f".{LEASE_FILE}.tmp{os.getpid()}"
        try:
            tmp.write_text(json.dumps(record) + "\n")
            os.replace(tmp, self.dir / LEASE_FILE)
        finally:
            tmp.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.check()
                self._write()
            except LeaseLost:
                return
            except OSError:
                pass  # a full disk or a vanished directory: the trial's own writes will say so

    def release(self) -> None:
        """Give the lease up (only ours: a lease.json another process wrote stays)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        _held_tokens.pop(str(self.dir.resolve()), None)
        current = read_holder(self.dir)
        if current is not None and current.token == self.me.token:
            (self.dir / LEASE_FILE).unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def remove_directory(self) -> None:
        """With the lease held: stop the heartbeat, delete the lease files and the (otherwise empty)
        trial directory, and let go.  A process that opened the old lock file in the meantime finds
        it no longer named (acquire checks) and locks the directory anew."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        _held_tokens.pop(str(self.dir.resolve()), None)
        (self.dir / LEASE_FILE).unlink(missing_ok=True)
        (self.dir / LOCK_FILE).unlink(missing_ok=True)
        try:
            self.dir.rmdir()
        except OSError:
            pass  # something new appeared in it: leave the directory
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "TrialLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
