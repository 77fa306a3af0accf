"""How the device check runs a step's commands: each in its own process group, time-limited,
its memory sampled, its output kept; what is left running is killed.  A step's record (commands,
results, problems) becomes its part of device_check.json."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from device_config import ROOT

TAIL_LINES = 40

LIVE_GROUPS: set[int] = set()  # process groups of the children still running


def log(text: str) -> None:
    print(f"[device_check] {text}", flush=True)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    LIVE_GROUPS.discard(pgid)


def kill_all_groups() -> None:
    for pgid in list(LIVE_GROUPS):
        kill_group(pgid)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class MemorySampler:
    """Peak memory of a process group while it runs, sampled twice a second: the largest peak
    RSS (VmHWM) of any of its processes and the largest sum of their RSS, from /proc; on CUDA
    also the device-wide memory in use (nvidia-smi), beside what was in use before it started."""

    def __init__(self, pgid: int, gpu: bool):
        self.pgid, self.gpu = pgid, gpu
        self.peak_rss = self.peak_sum = 0
        self.gpu_before = self.gpu_peak = None
        self._stop = threading.Event()
        if gpu:
            self.gpu_before = gpu_memory_used_mib()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        ticks = 0
        while not self._stop.wait(0.5):
            self._sample_proc()
            ticks += 1
            if self.gpu and ticks % 2 == 0:
                used = gpu_memory_used_mib()
                if used is not None:
                    self.gpu_peak = max(self.gpu_peak or 0, used)

    def _sample_proc(self) -> None:
        total = 0
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) != self.pgid:
                    continue
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if ":" in line)
            except (OSError, ValueError, IndexError):
                continue
            hwm = int(fields.get("VmHWM", "0 kB").split()[0])
            rss = int(fields.get("VmRSS", "0 kB").split()[0])
            self.peak_rss = max(self.peak_rss, hwm)
            total += rss
        self.peak_sum = max(self.peak_sum, total)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=5)
        out = {"peak_process_rss_mib": round(self.peak_rss / 1024, 1) if self.peak_rss else None,
               "peak_group_rss_mib": round(self.peak_sum / 1024, 1) if self.peak_sum else None}
        if self.gpu:
            out["gpu_used_mib_before"] = self.gpu_before
            out["gpu_used_mib_peak"] = self.gpu_peak
        return out


def gpu_memory_used_mib() -> float | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                              check=False, capture_output=True, text=True, timeout=10).stdout
        return float(text.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


class Clock:
    """The overall budget: each command gets at most what is left of it."""

    def __init__(self, budget: float | None):
        self.started = time.monotonic()
        self.budget = budget

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return float("inf") if self.budget is None else self.budget - self.elapsed()


class Step:
    """One step's record: its commands, its parsed results, its status."""

    def __init__(self, name: str, title: str, limit: float, clock: Clock, device: str, logdir: Path):
        self.name, self.title, self.device = name, title, device
        self.clock, self.logdir = clock, logdir
        self.deadline = time.monotonic() + min(limit, clock.left())
        self.commands: list[dict] = []
        self.results: dict = {}
        self.problems: list[str] = []
        self.memory: list[dict] = []

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self, cmd: list[str], env: dict | None = None, label: str | None = None) -> tuple[subprocess.Popen, dict]:
        n = len(self.commands)
        out_path, err_path = self.logdir / f"{self.name}-{n}.out", self.logdir / f"{self.name}-{n}.err"
        record = {"command": label or " ".join(cmd), "returncode": None, "seconds": None, "timed_out": False,
                  "_out": out_path, "_err": err_path}
        self.commands.append(record)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
        LIVE_GROUPS.add(proc.pid)
        record["_started"] = time.monotonic()
        record["_proc"] = proc
        record["_memory"] = MemorySampler(proc.pid, gpu=self.device.startswith("cuda"))
        return proc, record

    def finish(self, record: dict, killed: bool = False) -> dict:
        proc = record.pop("_proc")
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_group(proc.pid)  # what it left behind (DataLoader workers, packed trials)
        record["seconds"] = round(time.monotonic() - record.pop("_started"), 2)
        record["returncode"] = proc.returncode
        record["memory"] = record.pop("_memory").stop()
        record["killed_on_purpose"] = killed
        record["stdout"] = Path(record["_out"]).read_text(errors="replace")
        record["stderr"] = Path(record["_err"]).read_text(errors="replace")
        return record

    def run(self, cmd: list[str], env: dict | None = None, label: str | None = None) -> dict:
        """Run ``cmd`` to its end or to the step's time limit; the record has its stdout/stderr."""
        timeout = max(1.0, self.time_left())
        proc, record = self.start(cmd, env, label)
        log(f"  $ {record['command']}  (limit {timeout:.0f} s)")
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            record["timed_out"] = True
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.finish(record)
        log(f"    exit {record['returncode']} in {record['seconds']:.1f} s"
            + (" (TIMED OUT)" if record["timed_out"] else ""))
        if record["timed_out"]:
            self.problems.append(f"timed out after {record['seconds']:.0f} s: {record['command']}")
        elif record["returncode"] != 0:
            self.problems.append(f"exit {record['returncode']}: {record['command']}")
        return record

    def to_json(self, status: str, seconds: float) -> dict:
        commands = []
        for record in self.commands:
            clean = {k: v for k, v in record.items() if not k.startswith("_") and k not in ("stdout", "stderr")}
            failed = record.get("timed_out") or (record.get("returncode") not in (0, None)
                                                 and not record.get("killed_on_purpose"))
            if failed or status != "ok":
                clean["tail"] = tail(record.get("stdout", "") + "\n" + record.get("stderr", ""))
            commands.append(clean)
        return {"name": self.name, "title": self.title, "device": self.device, "status": status,
                "seconds": round(seconds, 2), "commands": commands, "results": self.results,
                "problems": self.problems}
