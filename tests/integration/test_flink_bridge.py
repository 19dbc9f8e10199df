"""The local Flink bridges against moto: events-enriched -> spool files, committed metric files -> metrics.

Each bridge is killed at its worst moment (simulated by leaving its files as a crash would) and
restarted: every row arrives exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.aws import client
from pipeline.local.flink_bridge import MetricsBridge, SpoolBridge, save_json_atomically
from pipeline.produce.kinesis import KinesisWriter, ensure_stream, read_stream

pytestmark = pytest.mark.integration


def enriched(i: int) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "event_type": "page_view",
        "event_time": 1_764_150_000_000 + i,
        "payload": {"url": "/"},
    }


def put_events(stream: str, events: list[dict[str, Any]], aggregate: bool) -> None:
    writer = KinesisWriter(client("kinesis"), stream, aggregate=aggregate)
    result = writer.put([(e["event_id"], json.dumps(e).encode()) for e in events])
    assert not result.failed


def spool_lines(spool: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for f in sorted(spool.glob("spool-*.jsonl")) for line in f.read_text().splitlines()
    ]


def test_spool_bridge_moves_every_event_once_across_restarts(moto_endpoint: str, tmp_path: Path) -> None:
    kinesis = client("kinesis")
    ensure_stream(kinesis, "enriched", 2)
    put_events("enriched", [enriched(i) for i in range(40)], aggregate=True)  # KPL aggregates
    put_events("enriched", [enriched(i) for i in range(40, 50)], aggregate=False)
    kinesis.put_record(StreamName="enriched", PartitionKey="x", Data=b"not json")
    spool, state = tmp_path / "spool", tmp_path / "state"

    bridge = SpoolBridge(kinesis, "enriched", spool, state)
    stats = bridge.poll_once()
    assert stats.lines == 50 and stats.rejected == 1
    assert json.loads((state / "rejected.jsonl").read_text())["reason"] == "not_an_enriched_event"
    assert bridge.poll_once().lines == 0  # nothing new: no empty file, no repeat

    # Crash after the state was saved but before the spool file was renamed into view.
    put_events("enriched", [enriched(i) for i in range(50, 60)], aggregate=False)
    real_replace = os.replace
    calls: list[str] = []

    def crash_on_spool_rename(src: Any, dst: Any) -> None:
        if Path(dst).name.startswith("spool-"):
            calls.append(str(dst))
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    os.replace = crash_on_spool_rename  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            bridge.poll_once()
    finally:
        os.replace = real_replace
    assert calls and len(spool_lines(spool)) == 50

    # Crash before the state was saved: a temp file with no state behind it.
    (spool / ".spool-000000099.jsonl").write_text(json.dumps(enriched(999)) + "\n")

    restarted = SpoolBridge(
        kinesis, "enriched", spool, state
    )  # finishes the committed rename, drops the rest
    put_events("enriched", [enriched(i) for i in range(60, 70)], aggregate=False)
    assert restarted.poll_once().lines == 10
    ids = [e["event_id"] for e in spool_lines(spool)]
    assert sorted(ids) == sorted(f"e{i}" for i in range(70))
    assert not list(spool.glob(".*"))


def test_metrics_bridge_puts_committed_rows_exactly_once(moto_endpoint: str, tmp_path: Path) -> None:
    kinesis = client("kinesis")
    ensure_stream(kinesis, "metrics", 1)
    metrics, state = tmp_path / "metrics", tmp_path / "state"
    metrics.mkdir()
    rows = [{"metric": "events_by_type", "window_start": i, "version": 1, "op": "insert"} for i in range(7)]
    (metrics / "metrics-a-0-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    (metrics / ".metrics-a-0-1.jsonl.inprogress.x").write_text(
        json.dumps(rows[5]) + "\n"
    )  # not committed yet

    bridge = MetricsBridge(kinesis, "metrics", metrics, state, batch_rows=2)
    assert bridge.poll_once().records == 5
    assert bridge.poll_once().records == 0

    # Flink commits the next part file; the bridge dies after putting part of a batch, before saving.
    (metrics / "metrics-a-0-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[5:]))
    save_json_atomically(
        state / "metrics_bridge.json",
        {**bridge.state, "pending": {"file": "metrics-a-0-1.jsonl", "start": 0, "end": 2}},
    )
    KinesisWriter(kinesis, "metrics", aggregate=False).put(
        [("metrics-a-0-1.jsonl#0", json.dumps(rows[5]).encode())]
    )

    restarted = MetricsBridge(kinesis, "metrics", metrics, state, batch_rows=2)
    assert restarted.poll_once().records == 1  # only the row the dead bridge had not put
    put = [json.loads(r.data) for r in read_stream(kinesis, "metrics")]
    assert sorted(put, key=lambda r: r["window_start"]) == rows
