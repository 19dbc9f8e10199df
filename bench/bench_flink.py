"""Throughput of the Flink analytics job on the local mini cluster: ONE JSON line.

Runs in the Flink venv (`.venv-flink/bin/python bench/bench_flink.py`; when started by another
interpreter it re-executes itself there). Generates N enriched events (default 1,000,000; ~2%
duplicates, mixed types, event time advancing with small disorder) into one spool file, runs the
job in `batch` runtime mode (bounded input, same operators as streaming) and reports:

- events_per_s: events / (job wall time - startup), startup = the same job over a 1-event input
  (planning, deployment, Python worker start), measured in the same JVM after a warm-up job;
- peak_jvm_rss_mb: peak resident memory of the JVM process (VmHWM).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLINK_VENV_PYTHON = ROOT / ".venv-flink" / "bin" / "python"
TARGET_EVENTS_PER_S = 100_000
T0 = 1_764_150_000_000


def write_events(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    types = ["page_view", "click", "purchase", "sensor_reading", "add_to_cart"]
    with path.open("w") as out:
        for i in range(count):
            event_type = types[i % len(types)]
            # N events over 10 minutes of event time, jitter up to 3 s (inside the out-of-orderness).
            event_time = T0 + i * 600_000 // max(count, 1) - rng.randint(0, 3000)
            payload: dict[str, Any]
            if event_type in ("page_view", "click"):
                payload = {"url": f"/p/{rng.randint(1, 200)}"}
            elif event_type == "purchase":
                payload = {
                    "order_id": f"o-{i}",
                    "amount_minor": rng.randint(100, 10_000),
                    "currency": rng.choice(["EUR", "USD", "GBP"]),
                    "item_count": 1,
                }
            elif event_type == "sensor_reading":
                payload = {
                    "device_id": f"dev-{rng.randint(1, 50)}",
                    "metric": "temperature",
                    "value": rng.uniform(10, 30),
                }
            else:
                payload = {"product_id": "sku-1", "quantity": 1, "unit_price_minor": 100, "currency": "EUR"}
            event_id = f"ev-{i if rng.random() > 0.02 else max(i - 1, 0)}"
            line = {
                "event_id": event_id,
                "event_type": event_type,
                "schema_version": 1,
                "event_time": event_time,
                "source": "web",
                "user_id": f"u-{rng.randint(1, 20_000)}",
                "session_id": None,
                "user_agent": None,
                "ip": None,
                "payload": payload,
                "enrichment": {"arrival_time": event_time + 50, "country": "DE"},
            }
            out.write(json.dumps(line, separators=(",", ":")))
            out.write("\n")


def properties(work: Path, source: Path, name: str) -> Path:
    groups = [
        {
            "PropertyGroupId": "job",
            "PropertyMap": {
                "runtime.mode": "batch",
                "parallelism": "1",
                "checkpoint.dir": str(work / name / "checkpoints"),
                "checkpoint.interval.s": "60",
                "watermark.interval.ms": os.environ.get("BENCH_WATERMARK_INTERVAL_MS", "0"),
            },
        },
        {"PropertyGroupId": "source", "PropertyMap": {"connector": "files", "path": str(source)}},
        {
            "PropertyGroupId": "sink.metrics",
            "PropertyMap": {"connector": "files", "path": str(work / name / "metrics")},
        },
        {"PropertyGroupId": "sink.late", "PropertyMap": {"path": str(work / name / "late")}},
    ]
    path = work / f"{name}.json"
    path.write_text(json.dumps(groups))
    return path


def jvm_peak_rss_mb() -> float | None:
    """VmHWM of this process's java child (the pyflink gateway JVM running the mini cluster)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"PPid:\t{os.getpid()}\n" in status and b"java" in cmdline:
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    return None


def run_job(props: Path) -> float:
    sys.path.insert(0, str(ROOT / "flink"))
    import analytics_job
    from job_settings import load_settings

    started = time.perf_counter()
    analytics_job.start(load_settings(props)).get_job_execution_result().result()
    return time.perf_counter() - started


def main() -> None:
    if Path(sys.executable).resolve() != FLINK_VENV_PYTHON.resolve() and FLINK_VENV_PYTHON.exists():
        os.execv(str(FLINK_VENV_PYTHON), [str(FLINK_VENV_PYTHON), __file__, *sys.argv[1:]])
    count = int(os.environ.get("BENCH_EVENTS", "1000000"))
    work = Path(tempfile.mkdtemp(prefix="bench-flink-"))
    try:
        (work / "tiny").mkdir()
        write_events(work / "tiny" / "events.jsonl", 1)
        (work / "full").mkdir()
        write_events(work / "full" / "events.jsonl", count)
        run_job(properties(work, work / "tiny", "warm-up"))  # starts the JVM and loads classes: not measured
        startup_s = run_job(properties(work, work / "tiny", "tiny-run"))
        total_s = run_job(properties(work, work / "full", "full-run"))
        processing_s = max(total_s - startup_s, 1e-9)
        rate = count / processing_s
        print(
            json.dumps(
                {
                    "bench": "flink_job",
                    "events": count,
                    "events_per_s": round(rate),
                    "target_events_per_s": TARGET_EVENTS_PER_S,
                    "meets_target": rate >= TARGET_EVENTS_PER_S,
                    "startup_s": round(startup_s, 2),
                    "job_wall_s": round(total_s, 2),
                    "peak_jvm_rss_mb": jvm_peak_rss_mb(),
                    "watermark_interval_ms": int(os.environ.get("BENCH_WATERMARK_INTERVAL_MS", "0")),
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
