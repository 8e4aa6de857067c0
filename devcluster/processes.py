"""Background processes of one local-cluster instance: started with a log file, tracked by PID file.

Every component's stdout/stderr goes to ``<state>/logs/<name>.log`` and its PID to
``<state>/pids/<name>.pid``, so `down` (or a later `up` cleaning after a killed run) can stop exactly
what this instance started, and a component that dies names itself with the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class ComponentError(RuntimeError):
    """A component failed to start or become healthy; the message names it and quotes its log."""


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


class Processes:
    def __init__(self, state_dir: Path) -> None:
        self.logs = state_dir / "logs"
        self.pids = state_dir / "pids"

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, argv: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # outlives the CLI; stopped by `down` through its PID
            )
        (self.pids / f"{name}.pid").write_text(str(proc.pid))
        return proc.pid

    def pid(self, name: str) -> int | None:
        try:
            return int((self.pids / f"{name}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self, name: str) -> bool:
        pid = self.pid(name)
        return pid is not None and is_running(pid)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.pids.glob("*.pid")) if self.pids.exists() else []

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM the component's process group, then SIGKILL what is left after ``timeout``."""
        pid = self.pid(name)
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            _signal_group(pid, signal.SIGCONT)  # a paused component must wake up to see the SIGTERM
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and is_running(pid):
                _reap(pid)
                time.sleep(0.1)
            _signal_group(pid, signal.SIGKILL)
            # Gone for real before returning, so a restart can bind the same ports again.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and is_running(pid):
                _reap(pid)
                time.sleep(0.05)
            _reap(pid)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def pause(self, name: str) -> None:
        """SIGSTOP the component's process group: it keeps its sockets but answers nothing (a hung peer)."""
        self._signal_running(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT what :meth:`pause` stopped."""
        self._signal_running(name, signal.SIGCONT)

    def _signal_running(self, name: str, sig: signal.Signals) -> None:
        pid = self.pid(name)
        if pid is None or not is_running(pid):
            raise ComponentError(f"{name} is not running (no live process in {self.pids / (name + '.pid')})")
        _signal_group(pid, sig)
        _wait_stopped(pid, sig == signal.SIGSTOP)

    def wait_healthy(self, name: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll ``check`` until it is true; fail naming the component if it dies or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive(name):
                raise ComponentError(
                    f"{name} exited during start-up; last lines of {self.log_path(name)}:\n"
                    f"{log_tail(self.log_path(name))}"
                )
            try:
                if check():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise ComponentError(
                    f"{name} did not become healthy within {timeout:.0f}s; last lines of "
                    f"{self.log_path(name)}:\n{log_tail(self.log_path(name))}"
                )
            time.sleep(0.2)


def pause(pid: int) -> None:
    """SIGSTOP one process (e.g. a controller under test): frozen in place, its clocks keep running.
    Returns once the kernel has stopped it."""
    os.kill(pid, signal.SIGSTOP)
    _wait_stopped(pid, True)


def resume(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
    _wait_stopped(pid, False)


def _wait_stopped(pid: int, stopped: bool, timeout: float = 5.0) -> None:
    """Signals are delivered asynchronously: wait (briefly) until the process is in the state asked for."""
    deadline = time.monotonic() + timeout
    while is_stopped(pid) != stopped and is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def is_stopped(pid: int) -> bool:
    """True while the process is stopped by a signal (state T)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("T", "t")
    except FileNotFoundError:
        return False


def is_running(pid: int) -> bool:
    """True while the process runs; a zombie (an exited child not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the whole process group (components' children too), then the process itself."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
