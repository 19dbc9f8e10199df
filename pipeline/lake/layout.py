"""Zones and object keys of the lake bucket (`stage().lake_bucket`).

| zone | holds | partitions (Hive style, UTC) |
| --- | --- | --- |
| `raw/` | `events-raw` as it arrived (replay source), GZIP JSON lines: base64 record + Kinesis metadata (`pipeline.lake.raw`) | `year=/month=/day=/hour=` of arrival |
| `curated/events/` | enriched events, Parquet, one table per event type | `event_type=/event_date=/event_hour=` of event time |
| `curated/metrics/` | Flink changelog rows, Parquet | `window_date=` of window start |
| `late/` | events past the allowed lateness (Flink late sink) | `event_date=` of event time |
| `bad/` | bad rows (DLQ archive, undecodable lake-writer input), Parquet | `failed_date=` |

Every object the lake writer makes is named after the Kinesis batch it came from (stream, shard, first
and last sequence number), so a retried batch overwrites the same objects: exactly-once files with no
coordination. The Hive `key=value` folders let Athena partition projection find them without a crawler;
Redshift Spectrum reads the partitions the lake writer registers in Glue (`pipeline.lake.catalog`).
"""

from __future__ import annotations

from datetime import UTC, datetime

RAW = "raw/"
CURATED_EVENTS = "curated/events/"
CURATED_METRICS = "curated/metrics/"
LATE = "late/"
BAD = "bad/"


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def date_of(ms: int) -> str:
    return utc(ms).strftime("%Y-%m-%d")


def raw_prefix(arrival_ms: int) -> str:
    """Firehose's `raw/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/`."""
    return utc(arrival_ms).strftime(f"{RAW}year=%Y/month=%m/day=%d/hour=%H/")


def events_partition(event_type: str, event_time_ms: int) -> str:
    return utc(event_time_ms).strftime(
        f"{CURATED_EVENTS}event_type={event_type}/event_date=%Y-%m-%d/event_hour=%H/"
    )


def events_table_prefix(event_type: str) -> str:
    return f"{CURATED_EVENTS}event_type={event_type}/"


def metrics_partition(window_start_ms: int) -> str:
    return f"{CURATED_METRICS}window_date={date_of(window_start_ms)}/"


def bad_partition(failed_at_ms: int) -> str:
    return f"{BAD}failed_date={date_of(failed_at_ms)}/"


def batch_object_name(stream: str, shard_id: str, first_sequence: str, last_sequence: str) -> str:
    """The file name every object of one Kinesis batch gets, in whichever partition it lands."""
    return f"{stream}.{shard_id}.{first_sequence}-{last_sequence}.parquet"
