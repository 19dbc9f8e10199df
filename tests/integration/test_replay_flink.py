"""Kappa replay against moto S3 and the real Flink job: replayed metrics equal the streaming run's,
and a second replay changes nothing."""

import base64
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.aws import client
from pipeline.config import REPO_ROOT, stage
from pipeline.lake.catalog import create_tables, glue_catalog
from pipeline.lake.raw import KinesisRecord, RawRecord, put_raw, raw_keys, read_raw_object
from pipeline.lake.replay import (
    FLINK_MAIN,
    FLINK_PYTHON,
    ReplayReport,
    committed_rows,
    enrich_records,
    replay,
)
from pipeline.lake.store import Lake, s3_lake
from pipeline.lake.writer import write_batch
from pipeline.warehouse.engine import LocalWarehouse

D = 1764115200000  # 2025-11-26T00:00:00Z
T = D + 10 * 3_600_000  # 10:00
EXAMPLES = json.loads((REPO_ROOT / "tests/fixtures/events/examples.json").read_text())


def event(name: str, event_id: str, event_time: int) -> bytes:
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, event_id))
    return json.dumps({**EXAMPLES[name], "event_id": uid, "event_time": event_time}).encode()


# Arrival order. p-3 is out of order but inside the allowed lateness: its window re-fires (version 2).
FIRST_OBJECT = [
    event("page_view.v1", "p-1", T + 1_000),
    event("click.v1", "c-1", T + 2_000),
    event("purchase.v2", "o-1", T + 3_000),
    event("page_view.v2", "p-2", T + 61_000),
    event("page_view.v2", "p-2", T + 61_000),  # a producer retry: Flink dedups it
    event("sensor_reading.v2", "s-1", T + 65_000),
]
SECOND_OBJECT = [
    event("add_to_cart.v1", "a-1", T + 70_000),
    event("page_view.v1", "p-3", T + 20_000),
    b"not an event",
    event("purchase.v3", "o-2", T + 130_000),
    event("app_log.v1", "l-1", T + 140_000),
]


def latest_metrics(lake: Lake) -> list[tuple[Any, ...]]:
    return (
        LocalWarehouse(lake)
        .query(
            'SELECT metric, window_start, window_end, dimensions, "values", version FROM metrics_latest '
            "WHERE window_date = '2025-11-26' ORDER BY metric, window_start, window_end, CAST(dimensions AS VARCHAR)"
        )
        .rows
    )


def archive(blobs: list[bytes], arrival_ms: int, first_sequence: int) -> list[KinesisRecord]:
    """One archived batch of shard 0: what the live enricher saw, with Kinesis metadata."""
    return [
        KinesisRecord(blob, arrival_ms + n, f"pk-{n}", "shardId-000000000000", f"{first_sequence + n:056d}")
        for n, blob in enumerate(blobs)
    ]


def run_streaming(live: list[RawRecord], work: Path) -> list[dict[str, Any]]:
    """The live path's Flink run: streaming mode over a spool, stopped once it has fired everything.

    Two marker events a day later push the watermark past every window of the day; the job has
    committed all of them once the first marker's own window shows up in the committed output."""
    spool, metrics, late = work / "spool", work / "metrics", work / "late"
    for directory in (spool, metrics, late):
        directory.mkdir(parents=True)
    records = list(live)
    for i in (0, 1):
        marker_time = D + 86_400_000 + i * 3_600_000
        records.append(
            RawRecord(
                event("sensor_reading.v1", f"marker-{i}", marker_time), marker_time, "m", "s", str(i), "m"
            )
        )
    report = ReplayReport(D, D + 86_400_000)
    (spool / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in enrich_records(records, report)))
    properties = json.loads((REPO_ROOT / "flink/application_properties.local.json").read_text())
    groups = {g["PropertyGroupId"]: g["PropertyMap"] for g in properties}
    groups["job"].update(
        {"runtime.mode": "streaming", "checkpoint.dir": str(work / "ckpt"), "checkpoint.restore": "none"}
    )
    groups["source"] = {"connector": "files", "path": str(spool), "monitor.interval.s": "1"}
    groups["sink.metrics"] = {"connector": "files", "path": str(metrics)}
    groups["sink.late"] = {"path": str(late)}
    (work / "props.json").write_text(
        json.dumps([{"PropertyGroupId": g, "PropertyMap": m} for g, m in groups.items()])
    )
    with (work / "flink.log").open("wb") as log:
        job = subprocess.Popen(
            [str(FLINK_PYTHON), str(FLINK_MAIN), "--properties", str(work / "props.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,  # pyflink starts a JVM child: stop the whole group we made
        )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rows = committed_rows(metrics)
            if any(r["window_start"] == D + 86_400_000 for r in rows):
                return [r for r in rows if r["window_start"] < D + 86_400_000]
            assert job.poll() is None, (work / "flink.log").read_text()[-3000:]
            time.sleep(1)
        raise AssertionError("the streaming job did not fire the marker window in 600 s")
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        try:
            job.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()


def lake_writer_batches(rows: list[dict[str, Any]], batch_size: int = 7) -> list[dict[str, Any]]:
    arn = f"arn:aws:kinesis:us-east-1:123456789012:stream/{stage().stream('metrics')}"
    events = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        events.append(
            {
                "Records": [
                    {
                        "kinesis": {
                            "kinesisSchemaVersion": "1.0",
                            "partitionKey": "k",
                            "sequenceNumber": f"{start + i:020d}",
                            "data": base64.b64encode(json.dumps(row).encode()).decode(),
                            "approximateArrivalTimestamp": T / 1000 + 300,
                        },
                        "eventID": f"shardId-000000000000:{start + i:020d}",
                        "eventSourceARN": arn,
                    }
                    for i, row in enumerate(chunk)
                ]
            }
        )
    return events


def test_replay_equals_the_streaming_run_and_is_idempotent(moto_endpoint: str, tmp_path: Path) -> None:
    client("s3").create_bucket(Bucket=stage().lake_bucket)
    create_tables(client("glue"), stage())
    lake = s3_lake()
    put_raw(lake, stage().raw_archive_stream, archive(FIRST_OBJECT, T + 66_000, 1))
    put_raw(lake, stage().raw_archive_stream, archive(SECOND_OBJECT, T + 141_000, 101))
    archived = [r for key in raw_keys(lake, D, D + 86_400_000) for r in read_raw_object(key, lake.get(key))]
    assert [r.data for r in archived] == FIRST_OBJECT + SECOND_OBJECT
    assert [r.arrival_ms for r in archived] == [T + 66_000 + n for n in range(6)] + [
        T + 141_000 + n for n in range(5)
    ]

    # The live run: enricher -> Flink (streaming) -> metrics stream -> lake writer -> curated/metrics.
    live_rows = run_streaming(archived, tmp_path / "live")
    assert any(r["version"] == 2 for r in live_rows), "p-3 should have re-fired its window"
    for batch in lake_writer_batches(live_rows):
        write_batch(batch, lake)
    streaming_objects = lake.keys("curated/metrics/")
    live = latest_metrics(lake)
    assert len(live) > 10

    first = replay(lake, T, T + 1, catalog=glue_catalog())
    assert (first.start_ms, first.end_ms) == (D, D + 86_400_000)
    assert (first.raw_objects, first.records, first.enriched) == (2, 11, 10)
    assert dict(first.bad_rows) == {"unparseable": 1}
    assert first.partitions_written == ["curated/metrics/window_date=2025-11-26/"]
    assert sorted(first.objects_deleted) == sorted(streaming_objects)
    assert latest_metrics(lake) == live
    # The live writer above ran without a catalog: the replayed day is registered for Spectrum.
    registered = client("glue").get_partitions(DatabaseName=stage().glue_database, TableName="metrics")
    assert [p["Values"] for p in registered["Partitions"]] == [["2025-11-26"]]

    objects = {key: lake.get(key) for key in lake.keys("curated/")}
    second = replay(lake, T, T + 1)
    assert (second.partitions_written, second.partitions_unchanged, second.objects_deleted) == (
        [],
        ["curated/metrics/window_date=2025-11-26/"],
        [],
    )
    assert {key: lake.get(key) for key in lake.keys("curated/")} == objects
