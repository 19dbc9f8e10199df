"""The lake writer turns one Lambda Kinesis batch into Parquet objects keyed by the batch."""

import base64
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from aws_kinesis_agg.aggregator import RecordAggregator

from pipeline.lake.writer import kinesis_batch, lake_objects

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/rta-local-{}"
T0 = 1764151200000  # 2025-11-26T10:00:00Z


def lambda_event(
    stream: str, blobs: list[bytes], first_seq: int = 100, arrival_s: float = T0 / 1000
) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "pk",
                    "sequenceNumber": str(first_seq + i),
                    "data": base64.b64encode(blob).decode(),
                    "approximateArrivalTimestamp": arrival_s,
                },
                "eventID": f"shardId-000000000001:{first_seq + i}",
                "eventSourceARN": ARN.format(stream),
            }
            for i, blob in enumerate(blobs)
        ]
    }


def page_view(event_id: str, event_time: int, url: str = "/home") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "page_view",
        "schema_version": 2,
        "event_time": event_time,
        "source": "web",
        "user_id": "u-1",
        "session_id": "s-1",
        "user_agent": None,
        "ip": None,
        "payload": {"url": url, "referrer": None, "title": None, "load_time_ms": 120},
        "enrichment": {
            "arrival_time": event_time + 500,
            "event_time_skew_ms": 500,
            "writer_version": 2,
            "ua_family": None,
            "ua_major": None,
            "os_family": None,
            "device_family": None,
            "is_bot": False,
            "country": "GB",
            "asn": None,
            "as_name": None,
            "enricher_version": "test-1",
        },
    }


def rows(body: bytes) -> list[dict[str, Any]]:
    return pq.read_table(pa.BufferReader(body)).to_pylist()


def test_one_object_per_partition_each_named_after_the_batch() -> None:
    batch = [
        json.dumps(page_view("e-1", T0)).encode(),
        json.dumps(page_view("e-2", T0 + 3_600_000)).encode(),  # next hour
        json.dumps(page_view("e-3", T0 + 1000)).encode(),
    ]
    objects = lake_objects(kinesis_batch(lambda_event("events-enriched", batch)))
    name = "rta-local-events-enriched.shardId-000000000001.100-102.parquet"
    base = "curated/events/event_type=page_view/event_date=2025-11-26"
    assert sorted(objects) == [f"{base}/event_hour=10/{name}", f"{base}/event_hour=11/{name}"]
    assert [r["event_id"] for r in rows(objects[f"{base}/event_hour=10/{name}"])] == ["e-1", "e-3"]
    assert rows(objects[f"{base}/event_hour=11/{name}"])[0]["payload"] == {
        "url": "/home",
        "referrer": None,
        "title": None,
        "load_time_ms": 120,
    }


def test_same_batch_gives_byte_identical_objects() -> None:
    event = lambda_event("events-enriched", [json.dumps(page_view("e-1", T0)).encode(), b"not json"])
    assert lake_objects(kinesis_batch(event)) == lake_objects(kinesis_batch(event))


def test_bad_input_becomes_bad_rows_with_reasons() -> None:
    wrong_type = dict(page_view("e-4", T0), event_time="yesterday")
    batch = [
        b"{oops",
        json.dumps({"event_type": "teleport"}).encode(),
        json.dumps(wrong_type).encode(),
        b"[1]",
        json.dumps(page_view("e-5", 2**62)).encode(),  # a valid long, but no calendar date
    ]
    objects = lake_objects(kinesis_batch(lambda_event("events-enriched", batch)))
    [(key, body)] = objects.items()
    assert key == "bad/failed_date=2025-11-26/rta-local-events-enriched.shardId-000000000001.100-104.parquet"
    got = [(r["reason"], r["field"], r["sequence_number"], r["enricher_version"]) for r in rows(body)]
    assert got == [
        ("unparseable", None, "100", ""),
        ("unknown_event_type", None, "101", ""),
        ("schema_violation", "event_time", "102", "test-1"),
        ("unknown_event_type", None, "103", ""),
        ("timestamp_out_of_range", "event_time", "104", "test-1"),
    ]
    assert base64.b64decode(rows(body)[0]["payload_base64"]) == b"{oops"


def test_kpl_aggregated_records_are_deaggregated() -> None:
    aggregator = RecordAggregator()
    for i in range(3):
        aggregator.add_user_record("pk", json.dumps(page_view(f"e-{i}", T0 + i)).encode())
    _, _, aggregated = aggregator.clear_and_get().get_contents()
    objects = lake_objects(kinesis_batch(lambda_event("events-enriched", [aggregated])))
    [(key, body)] = objects.items()
    assert key.endswith("rta-local-events-enriched.shardId-000000000001.100-100.parquet")
    assert [r["event_id"] for r in rows(body)] == ["e-0", "e-1", "e-2"]


def test_metric_rows_land_by_window_date() -> None:
    def metric(window_start: int, version: int, op: str) -> bytes:
        row = {
            "metric": "page_activity",
            "window_start": window_start,
            "window_end": window_start + 60_000,
            "dimensions": {"page": "/home"},
            "values": {"views": 2, "clicks": 0.5},
            "version": version,
            "op": op,
            "emitted_at": window_start + 65_000,
        }
        return json.dumps(row).encode()

    objects = lake_objects(
        kinesis_batch(
            lambda_event("metrics", [metric(T0, 1, "insert"), metric(T0 - 86_400_000, 2, "retract")])
        )
    )
    name = "rta-local-metrics.shardId-000000000001.100-101.parquet"
    assert sorted(objects) == [
        f"curated/metrics/window_date=2025-11-25/{name}",
        f"curated/metrics/window_date=2025-11-26/{name}",
    ]
    [row] = rows(objects[f"curated/metrics/window_date=2025-11-26/{name}"])
    assert row["dimensions"] == [("page", "/home")]
    assert row["values"] == [("views", 2.0), ("clicks", 0.5)]
    assert (row["version"], row["op"]) == (1, "insert")
