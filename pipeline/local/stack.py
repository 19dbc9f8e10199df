"""The local stack: an emulator on 127.0.0.1, the `local` stage's resources, and the stand-in processes.

Every process is started here and recorded by PID in `<state>/stack.json`; `down` stops exactly those.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.config import REPO_ROOT, Stage, stage
from pipeline.lake.catalog import CATALOG_ENV
from pipeline.local.components import COMPONENTS
from pipeline.local.durable import load_json, save_json_atomically
from pipeline.local.emulator import Emulator, alive, start_moto, wait_healthy
from pipeline.local.resources import create_resources
from pipeline.local.status import state_dir

Target = Literal["moto", "localstack"]
STACK_FILE = "stack.json"


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    argv: list[str]


def component_specs(stage: Stage) -> list[ComponentSpec]:
    """The stand-ins, in start order (downstream first so nothing is read before its reader exists)."""
    run = [sys.executable, "-m", "pipeline.local.components", "--stage", stage.name]
    return [ComponentSpec(name, [*run, name]) for name in COMPONENTS]


def load_state(directory: Path | None = None) -> dict[str, Any] | None:
    return load_json((directory or state_dir()) / STACK_FILE, {}) or None


def _start_localstack(port: int) -> tuple[int | None, str]:
    env = {**os.environ, "LOCALSTACK_PORT": str(port)}
    subprocess.run([str(REPO_ROOT / "localstack" / "start.sh")], check=True, env=env)
    pid_file = state_dir() / "localstack.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    return pid, f"http://127.0.0.1:{port}"


def start_component(spec: ComponentSpec, endpoint_url: str, directory: Path, target: Target = "moto") -> int:
    log = open(directory / "logs" / f"{spec.name}.log", "ab")  # noqa: SIM115 - owned by the child
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint_url, "PIPELINE_STATE_DIR": str(directory)}
    if target == "localstack":  # its free edition has no Glue: the lake writer registers no partitions
        env[CATALOG_ENV] = "none"
    proc = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc.pid


def up(stage: Stage, target: Target = "moto", port: int = 4566) -> dict[str, Any]:
    """Starts everything; returns the state document once the endpoint is healthy and resources exist."""
    directory = state_dir()
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    existing = load_state(directory)
    if existing and alive(existing.get("emulator_pid")):
        raise RuntimeError(
            f"a local stack is already up (emulator PID {existing['emulator_pid']}); run `pipeline down` first"
        )
    # A fresh emulator has empty streams: checkpoints, spools and counters of an earlier run would lie.
    for stale in ("checkpoints", "flink", "status"):
        shutil.rmtree(directory / stale, ignore_errors=True)
    if target == "moto":
        emulator = start_moto(port, log_path=directory / "logs" / "moto.log")
        emulator_pid: int | None = emulator.pid
        endpoint = emulator.endpoint_url
    else:
        emulator_pid, endpoint = _start_localstack(port)
        wait_healthy_localstack(endpoint)
    state: dict[str, Any] = {
        "target": target,
        "stage": stage.name,
        "endpoint_url": endpoint,
        "emulator_pid": emulator_pid,
        "components": {},
        "started_at": int(time.time() * 1000),
    }
    save_json_atomically(directory / STACK_FILE, state)
    resources = create_resources(stage, endpoint, glue=target == "moto")
    state["resources"] = resources.as_json()
    for spec in component_specs(stage):
        state["components"][spec.name] = start_component(spec, endpoint, directory, target)
        save_json_atomically(directory / STACK_FILE, state)
    return state


def wait_healthy_localstack(endpoint: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"LocalStack at {endpoint} not healthy after 60 s")


def stop_pid(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process group we started, wait, then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def kill_and_restart(name: str, directory: Path | None = None) -> tuple[int, int]:
    """Crash a stand-in (SIGKILL to its process group, no chance to checkpoint) and start it again,
    as a Lambda environment or a Flink task manager dies. Returns (old PID, new PID)."""
    directory = directory or state_dir()
    state = load_state(directory)
    if not state or name not in state.get("components", {}):
        raise KeyError(f"no running component {name!r}")
    old = state["components"][name]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(old, signal.SIGKILL)
    while alive(old):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(old, os.WNOHANG)
        time.sleep(0.05)
    spec = next(s for s in component_specs(stage(state["stage"])) if s.name == name)
    new = start_component(spec, state["endpoint_url"], directory, state.get("target", "moto"))
    state["components"][name] = new
    save_json_atomically(directory / STACK_FILE, state)
    return old, new


def down(directory: Path | None = None) -> list[str]:
    """Stops the recorded processes (stand-ins first, emulator last). Returns what it stopped."""
    directory = directory or state_dir()
    state = load_state(directory)
    if not state:
        return []
    stopped = []
    for name, pid in reversed(list(state.get("components", {}).items())):
        if alive(pid):
            stop_pid(pid)
            stopped.append(f"{name} (PID {pid})")
    if state.get("target") == "localstack":
        subprocess.run([str(REPO_ROOT / "localstack" / "stop.sh")], check=False)
        stopped.append("localstack")
    elif alive(state.get("emulator_pid")):
        Emulator(state["emulator_pid"], state["endpoint_url"]).stop()
        stopped.append(f"moto (PID {state['emulator_pid']})")
    (directory / STACK_FILE).unlink(missing_ok=True)
    return stopped


__all__ = ["ComponentSpec", "Target", "down", "load_state", "start_moto", "up", "wait_healthy"]
