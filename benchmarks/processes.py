"""Controller processes the runner starts, and their footprint read from /proc (no psutil needed).

Each controller runs as a child process with its own log file; the runner stops exactly the processes
it started (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Footprint:
    rss_mib: float
    cpu_seconds: float
    #: The most RSS the process has had so far (the kernel's high-water mark): no sampling misses a peak.
    rss_peak_mib: float = 0.0


def parse_rss_kib(status_text: str, field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) from /proc/PID/status, in KiB."""
    for line in status_text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} line (has the process exited?)")


def parse_cpu_ticks(stat_text: str) -> int:
    """utime + stime (own threads, not children) from /proc/PID/stat, in clock ticks."""
    # The command name (field 2) may contain spaces and parentheses: split after its closing paren.
    fields = stat_text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of the whole line


def footprint(pid: int, proc: Path = Path("/proc")) -> Footprint:
    status = (proc / str(pid) / "status").read_text()
    ticks = parse_cpu_ticks((proc / str(pid) / "stat").read_text())
    return Footprint(rss_mib=round(parse_rss_kib(status) / 1024, 1), cpu_seconds=round(ticks / CLOCK_TICKS, 2),
                     rss_peak_mib=round(parse_rss_kib(status, "VmHWM") / 1024, 1))


class Controller:
    """One controller process (kubedask or the operator) with its log kept under the run directory."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Controller:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.cwd, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise RuntimeError(f"{self.name} controller exited ({code}); log:\n{self.log_tail()}")

    def footprint(self) -> Footprint:
        self.check_alive()
        return footprint(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=grace)


def wait_until(what: str, probe: Callable[[], object], timeout: float, interval: float = 1.0) -> float:
    """Poll ``probe()`` until truthy; return the seconds it took. Raise TimeoutError naming ``what``."""
    started = time.monotonic()
    deadline = started + timeout
    last = None
    while True:
        last = probe()
        if last:
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
