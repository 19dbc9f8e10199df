"""Start and stop a local AWS endpoint (moto server) as a child process, tracked by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulator:
    pid: int
    endpoint_url: str
    log_path: Path | None = None

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL: only ever the process this object started."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # not our child (started by another process): poll liveness
                finished = 0 if alive(self.pid) else self.pid
            if finished:
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def alive(pid: int | None) -> bool:
    """Also reaps: a stand-in that exited stays a zombie child of its starter until waited for."""
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:  # not our child (started by `pipeline up` in another process)
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_healthy(endpoint_url: str, timeout_s: float = 30.0, pid: int | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            raise RuntimeError(f"emulator process {pid} exited before {endpoint_url} became healthy")
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=2):
                return
        except Exception as exc:  # connection refused until the server listens
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"{endpoint_url} not healthy after {timeout_s}s: {last}")


def start_moto(port: int | None = None, log_path: Path | None = None) -> Emulator:
    """moto server on 127.0.0.1:`port` (a free one by default), returned once it answers."""
    port = port or free_port()
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    emulator = Emulator(proc.pid, endpoint, log_path)
    try:
        wait_healthy(endpoint, pid=proc.pid)
    except Exception:
        emulator.stop()
        raise
    return emulator


def reset_moto(endpoint_url: str) -> None:
    """Drop every resource in a moto server (between tests), keeping the process."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
