"""The local stand-in for Managed Flink end to end against moto: events-enriched -> spool bridge ->
the real job (streaming, `flink/main.py` in .venv-flink) -> committed metric files -> metrics bridge
-> the metrics stream. Every metric row lands on the stream exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.aws import client
from pipeline.config import REPO_ROOT
from pipeline.local.flink_bridge import MetricsBridge, SpoolBridge
from pipeline.produce.kinesis import KinesisWriter, ensure_stream, read_stream

FLINK_PYTHON = REPO_ROOT / ".venv-flink" / "bin" / "python"
assert FLINK_PYTHON.exists(), f"no Flink venv at {FLINK_PYTHON}: `make pytest` builds it first"
pytestmark = pytest.mark.integration
T0 = 1_764_150_000_000


def enriched(event_id: str, event_type: str, at_s: int, user: str, **payload: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "schema_version": 1, "event_time": T0 + at_s * 1000,
            "source": "web", "user_id": user, "session_id": None, "user_agent": None, "ip": None,
            "payload": payload, "enrichment": {"arrival_time": T0 + at_s * 1000}}  # fmt: skip


def test_events_flow_through_the_job_onto_the_metrics_stream(moto_endpoint: str, tmp_path: Path) -> None:
    kinesis = client("kinesis")
    ensure_stream(kinesis, "enriched", 2)
    ensure_stream(kinesis, "metrics", 1)
    events = [
        enriched("a", "purchase", 1, "u1", order_id="o1", amount_minor=300, currency="EUR", item_count=1),
        enriched("b", "purchase", 2, "u2", order_id="o2", amount_minor=200, currency="EUR", item_count=1),
        enriched("a", "purchase", 1, "u1", order_id="o1", amount_minor=300, currency="EUR", item_count=1),
        enriched("c", "page_view", 90, "u1", url="/"),  # moves the watermark past the first minute
    ]
    writer = KinesisWriter(kinesis, "enriched", aggregate=True)
    assert not writer.put([("k", json.dumps(e).encode()) for e in events]).failed

    spool, metrics, state = tmp_path / "spool", tmp_path / "metrics", tmp_path / "state"
    SpoolBridge(kinesis, "enriched", spool, state).poll_once()
    props = tmp_path / "props.json"
    props.write_text(json.dumps([
        {"PropertyGroupId": "pipeline", "PropertyMap": {"stage": "local"}},
        {"PropertyGroupId": "job", "PropertyMap": {"runtime.mode": "streaming", "parallelism": "1",
                                                   "checkpoint.dir": str(tmp_path / "ckpt"), "checkpoint.interval.s": "1"}},
        {"PropertyGroupId": "source", "PropertyMap": {"connector": "files", "path": str(spool)}},
        {"PropertyGroupId": "sink.metrics", "PropertyMap": {"connector": "files", "path": str(metrics)}},
        {"PropertyGroupId": "sink.late", "PropertyMap": {"path": str(tmp_path / "late")}},
    ]))  # fmt: skip
    with (tmp_path / "flink.log").open("wb") as log:
        job = subprocess.Popen(
            [str(FLINK_PYTHON), str(REPO_ROOT / "flink/main.py"), "--properties", str(props)],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True,
        )  # fmt: skip
    bridge = MetricsBridge(kinesis, "metrics", metrics, state)
    try:
        deadline = time.monotonic() + 300
        put: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not any(r["metric"] == "revenue_by_currency" for r in put):
            assert job.poll() is None, (tmp_path / "flink.log").read_text()[-3000:]
            bridge.poll_once()
            put = [json.loads(r.data) for r in read_stream(kinesis, "metrics")]
            time.sleep(1)
    finally:
        os.killpg(job.pid, signal.SIGTERM)  # the job and the JVM it started: our own process group
        try:
            job.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    bridge.poll_once()  # anything committed before the stop
    put = [json.loads(r.data) for r in read_stream(kinesis, "metrics")]
    revenue = [r for r in put if r["metric"] == "revenue_by_currency"]
    assert [(r["window_start"], r["dimensions"], r["values"], r["version"], r["op"]) for r in revenue] == [
        (T0, {"currency": "EUR"}, {"purchases": 2.0, "revenue_minor": 500.0}, 1, "insert")
    ]
    committed = [
        line for f in metrics.iterdir() if not f.name.startswith(".") for line in f.read_text().splitlines()
    ]
    assert sorted(json.dumps(r, sort_keys=True) for r in put) == sorted(
        json.dumps(json.loads(line), sort_keys=True) for line in committed
    )
