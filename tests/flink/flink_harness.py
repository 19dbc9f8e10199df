"""Helpers for the Flink job tests (events, spool files, job settings, committed output)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "flink"))

import analytics_job  # noqa: E402
from job_settings import JobSettings, settings_from_groups  # noqa: E402

T0 = 1_764_150_000_000  # a minute boundary (2025-11-26 09:40 UTC)


def event(event_id: str, event_type: str, at_s: float, user: str | None, **payload: Any) -> dict[str, Any]:
    """An enriched event (docs/data-contracts.md) at T0 + at_s seconds."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "event_time": T0 + int(at_s * 1000),
        "source": "web",
        "user_id": user,
        "session_id": None,
        "user_agent": None,
        "ip": None,
        "payload": payload,
        "enrichment": {"arrival_time": T0 + int(at_s * 1000) + 40, "country": "DE", "is_bot": False},
    }


def write_spool(directory: Path, name: str, events: Iterable[dict[str, Any]]) -> Path:
    """One spool file, made visible atomically (the file source skips dot-files)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.tmp"
    tmp.write_text("".join(json.dumps(e) + "\n" for e in events))
    return tmp.rename(directory / name)


def committed_rows(directory: Path) -> list[dict[str, Any]]:
    """Rows of committed part files, in file then line order (in-progress files start with a dot)."""
    rows: list[dict[str, Any]] = []
    if not directory.exists():
        return rows
    for part in sorted(directory.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        if part.is_file() and not part.name.startswith("."):
            rows.extend(json.loads(line) for line in part.read_text().splitlines() if line)
    return rows


def without_emitted_at(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "emitted_at"} for r in rows]


def latest_state(rows: Iterable[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, float]]:
    """The contract's reading: per upsert key, the values of the highest inserted version."""
    best: dict[tuple[Any, ...], tuple[int, dict[str, float]]] = {}
    for r in rows:
        if r["op"] != "insert":
            continue
        key = (r["metric"], r["window_start"], r["window_end"], json.dumps(r["dimensions"], sort_keys=True))
        if key not in best or r["version"] > best[key][0]:
            best[key] = (r["version"], r["values"])
    return {k: v for k, (_, v) in best.items()}


def job_settings(
    work: Path,
    spool: Path,
    *,
    mode: str = "batch",
    parallelism: int = 1,
    restore: str = "none",
    idle_timeout_s: int = 10,
) -> JobSettings:
    groups = {
        "pipeline": {"stage": "local"},
        "job": {
            "runtime.mode": mode,
            "parallelism": str(parallelism),
            "checkpoint.dir": str(work / "checkpoints"),
            "checkpoint.interval.s": "1",
            "checkpoint.restore": restore,
            "watermark.idle-timeout.s": str(idle_timeout_s),
            "watermark.interval.ms": "0",
        },
        "source": {"connector": "files", "path": str(spool), "monitor.interval.s": "1"},
        "sink.metrics": {"connector": "files", "path": str(work / "metrics")},
        "sink.late": {"path": str(work / "late")},
    }
    return settings_from_groups(groups, work)


def run_to_end(settings: JobSettings) -> None:
    analytics_job.start(settings).get_job_execution_result().result()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
