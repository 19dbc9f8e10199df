"""Replay's pieces that need no Flink: the raw/ format, the enricher path, idempotent overwrite."""

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.lake.raw import KinesisRecord, RawRecord, put_raw, raw_keys, read_raw_object
from pipeline.lake.replay import ReplayReport, enrich_records, lambda_record, overwrite_metrics, widen_to_days
from pipeline.lake.store import Lake, local_lake
from pipeline.warehouse.engine import LocalWarehouse

T = 1764151200000  # 2025-11-26T10:00:00Z
DAY = 86_400_000
EXAMPLES = json.loads((Path(__file__).parents[2] / "fixtures/events/examples.json").read_text())


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return local_lake(tmp_path)


def test_range_widens_to_whole_utc_days() -> None:
    assert widen_to_days(T, T + 1) == (T - 10 * 3_600_000, T + 14 * 3_600_000)
    assert widen_to_days(T - 10 * 3_600_000, T + 14 * 3_600_000) == (T - 10 * 3_600_000, T + 14 * 3_600_000)
    with pytest.raises(ValueError, match="--to must be after --from"):
        widen_to_days(T, T)


def test_raw_objects_are_firehose_shaped_and_read_back_in_arrival_order(lake: Lake) -> None:
    second = put_raw(
        lake, "rta-local-raw-archive", [KinesisRecord(b'{"b":1}', T + 3_600_000, "b", "shardId-1", "7")]
    )
    first = put_raw(
        lake,
        "rta-local-raw-archive",
        [
            KinesisRecord(b'{"a":1}', T + 59_000, "a", "shardId-0", "3"),
            KinesisRecord(b'{"a":2}', T + 59_500, "a", "shardId-0", "5"),
        ],
    )
    assert (
        first
        == "raw/year=2025/month=11/day=26/hour=10/rta-local-raw-archive-1-2025-11-26-10-00-59-shardId-0.3-5.gz"
    )
    assert gzip.decompress(lake.get(first)) == (
        b'{"data":"eyJhIjoxfQ==","arrival_ms":1764151259000,"partition_key":"a","shard_id":"shardId-0",'
        b'"sequence_number":"3"}\n'
        b'{"data":"eyJhIjoyfQ==","arrival_ms":1764151259500,"partition_key":"a","shard_id":"shardId-0",'
        b'"sequence_number":"5"}\n'
    )
    assert raw_keys(lake, T, T + 2 * 3_600_000) == [first, second]
    assert raw_keys(lake, T + 3_600_000, T + 2 * 3_600_000) == [second]
    records = read_raw_object(first, lake.get(first))
    assert records == [
        RawRecord(b'{"a":1}', T + 59_000, "a", "shardId-0", "3", f"{first}:1"),
        RawRecord(b'{"a":2}', T + 59_500, "a", "shardId-0", "5", f"{first}:2"),
    ]


def test_replay_enriches_like_the_enricher_and_counts_bad_rows() -> None:
    event = dict(EXAMPLES["purchase.v1"], event_time=T)
    future = dict(EXAMPLES["click.v1"], event_time=T + 3_600_000)
    records = [
        RawRecord(json.dumps(e).encode(), T + 1000, "p", "shardId-0", str(i), f"k:{i}")
        for i, e in enumerate([event, future])
    ]
    records.append(RawRecord(b"garbage", T + 1000, "", "", "", "k:3"))
    report = ReplayReport(T, T + DAY)
    [enriched] = [json.loads(line) for line in enrich_records(records, report)]
    assert report.bad_rows == {"future_event_time": 1, "unparseable": 1}
    assert enriched["schema_version"] == 3  # upcast to the newest purchase version
    assert enriched["payload"]["item_count"] == 2
    assert enriched["user_id"] != "u-1"  # pseudonymised
    assert enriched["enrichment"]["arrival_time"] == T + 1000


def test_replay_hands_the_enricher_each_record_with_its_real_kinesis_metadata() -> None:
    record = RawRecord(b"\x03\x00\n", T + 1234, "s-9", "shardId-000000000002", "4966", "raw/k.gz:3")
    assert lambda_record(record) == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "s-9",
            "sequenceNumber": "4966",
            "data": "AwAK",
            "approximateArrivalTimestamp": (T + 1234) / 1000,
        },
        "eventID": "shardId-000000000002:4966",
        "eventSourceARN": "arn:aws:kinesis:replay:000000000000:stream/rta-local-events-raw",
    }
    # A line that held no record has no metadata: its origin names it.
    garbage = lambda_record(RawRecord(b"x", T, "", "", "", "raw/k.gz:4"))
    assert (garbage["eventID"], garbage["kinesis"]["sequenceNumber"]) == ("replay:raw/k.gz:4", "raw/k.gz:4")


def metric(start: int, views: float, version: int, op: str, emitted_at: int) -> dict[str, Any]:
    return {
        "metric": "page_activity",
        "window_start": start,
        "window_end": start + 60_000,
        "dimensions": {"page": "/home"},
        "values": {"views": views},
        "version": version,
        "op": op,
        "emitted_at": emitted_at,
    }


def test_overwrite_replaces_the_partition_and_a_second_run_changes_nothing(lake: Lake) -> None:
    stale = "curated/metrics/window_date=2025-11-26/rta-local-metrics.shardId-0.1-9.parquet"
    lake.put(stale, b"streaming object")
    other_day = "curated/metrics/window_date=2025-11-27/keep.parquet"
    lake.put(other_day, b"outside the range")
    rows = [
        metric(T, 2, 2, "insert", T + 99_000),
        metric(T, 1, 1, "insert", T + 61_000),
        metric(T, 1, 1, "retract", T + 99_000),
        metric(T + DAY, 5, 1, "insert", T + DAY + 61_000),  # outside [start, end): dropped
    ]
    first = ReplayReport(T - 10 * 3_600_000, T + 14 * 3_600_000)
    overwrite_metrics(lake, rows, first)
    assert first.partitions_written == ["curated/metrics/window_date=2025-11-26/"]
    assert first.objects_deleted == [stale]
    assert first.metric_rows == 3
    assert lake.keys("curated/metrics/") == [
        "curated/metrics/window_date=2025-11-26/replay.parquet",
        other_day,
    ]
    body = lake.get("curated/metrics/window_date=2025-11-26/replay.parquet")

    second = ReplayReport(first.start_ms, first.end_ms)
    overwrite_metrics(lake, list(reversed(rows)), second)  # Flink's output order may differ
    assert (second.partitions_written, second.partitions_unchanged, second.objects_deleted) == (
        [],
        ["curated/metrics/window_date=2025-11-26/"],
        [],
    )
    assert lake.get("curated/metrics/window_date=2025-11-26/replay.parquet") == body

    lake.delete([other_day])
    latest = LocalWarehouse(lake).query('SELECT "values", version, emitted_at FROM metrics_latest').rows
    assert [(v, version) for v, version, _ in latest] == [({"views": 2.0}, 2)]


def test_an_empty_replay_never_wipes_a_partition(lake: Lake) -> None:
    kept = "curated/metrics/window_date=2025-11-26/rta-local-metrics.shardId-0.1-9.parquet"
    lake.put(kept, b"streaming object")
    report = ReplayReport(T - 10 * 3_600_000, T + 14 * 3_600_000)
    overwrite_metrics(lake, [], report)
    assert lake.keys("curated/metrics/") == [kept]
    assert report.partitions_written == []
