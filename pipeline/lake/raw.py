"""The `raw/` zone: events-raw as it arrived, one JSON line per Kinesis record (the replay source).

Each line is a JSON object, newline-terminated:

    {"data": "<base64 of the exact record bytes>", "arrival_ms": 1764151200123,
     "partition_key": "...", "shard_id": "shardId-000000000000", "sequence_number": "4954..."}

Records are binary (Avro behind a header, KPL aggregates), so their own bytes may hold 0x0A: only
base64 inside a JSON line makes "one record per line" safe to split again, and the line keeps what
replay needs to feed the enricher the record exactly as Lambda saw it (arrival time, partition key,
shard, sequence number). Objects are GZIP'd, under `raw/year=YYYY/month=MM/day=DD/hour=HH/` of the
oldest arrival in them, named `<delivery stream>-1-<yyyy-MM-dd-HH-mm-ss>-<id>.gz`.

On AWS, Firehose (stacks/ingest.py) reads events-raw and calls the `raw-archiver` Lambda
(`lambdas/raw_archiver`, `firehose_transform`) to turn each record into its line; Firehose buffers
and writes the objects. Firehose de-aggregates KPL records before it calls a transformation Lambda,
so on AWS a line holds one user record (all user records of an aggregate share its sequence number).

Locally nothing runs Firehose: `archive_handler` is a Lambda-style Kinesis handler that the local
event source mapping (`pipeline.local.event_source_mapping`) calls with the `lake_writer_mapping`
buffering settings of the stage; it writes one object per batch with `put_raw`, named after (shard,
first and last sequence number), so a retried batch overwrites the same object. Aggregates stay
whole there; replay and the enricher de-aggregate either way.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from pipeline.lake import layout

if TYPE_CHECKING:  # the archiver Lambda ships without pyarrow: import the lake only where it is used
    from pipeline.lake.store import Lake

_NAME_TIME = re.compile(r"-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-")
_HOUR_MS = 3_600_000
GZIP_MAGIC = b"\x1f\x8b"
_STRING_FIELDS = ("partition_key", "shard_id", "sequence_number")


class KinesisRecord(NamedTuple):
    """One events-raw record as the archive keeps it: what a raw/ line holds."""

    data: bytes
    arrival_ms: int
    partition_key: str
    shard_id: str
    sequence_number: str


@dataclass(frozen=True)
class RawRecord:
    """A raw/ line read back. A line that is not a record line keeps its own bytes as `data` (and empty
    metadata), so the enricher turns it into a counted bad row instead of it vanishing."""

    data: bytes
    arrival_ms: int
    partition_key: str
    shard_id: str
    sequence_number: str
    origin: str  # `<object key>:<line>`: where a bad row came from


def raw_line(
    data_base64: str, arrival_ms: int, partition_key: str, shard_id: str, sequence_number: str
) -> bytes:
    """The one raw/ line of a record whose bytes are already base64 (as Firehose and Lambda hand them)."""
    line = {
        "data": data_base64,
        "arrival_ms": arrival_ms,
        "partition_key": partition_key,
        "shard_id": shard_id,
        "sequence_number": sequence_number,
    }
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def firehose_transform(event: dict[str, Any]) -> dict[str, Any]:
    """A Firehose data-transformation response wrapping each Kinesis-sourced record into its raw/ line.

    Input: the documented Firehose transformation event for a Kinesis Data Streams source (`records[]`
    of `recordId`, `approximateArrivalTimestamp` (ms), `data` (base64) and `kinesisRecordMetadata`:
    `shardId`, `partitionKey`, `approximateArrivalTimestamp` (ms), `sequenceNumber`,
    `subsequenceNumber`). Wrapping cannot fail: the record's base64 goes into the line untouched,
    nothing is decoded or parsed. So every record comes back `Ok`, in order; none is `Dropped`, and
    none is `ProcessingFailed` (Firehose would write that under `bad/firehose/processing-failed/`).
    An event not of that shape raises: Firehose retries the invocation, then writes the batch there
    as processing-failed, so even then nothing is lost. The arrival time is the Kinesis one (what the
    enricher sees as `approximateArrivalTimestamp`), else Firehose's own.
    """
    out = []
    for record in event["records"]:
        metadata = record.get("kinesisRecordMetadata") or {}
        line = raw_line(
            record["data"],
            int(metadata.get("approximateArrivalTimestamp") or record["approximateArrivalTimestamp"]),
            str(metadata.get("partitionKey", "")),
            str(metadata.get("shardId", "")),
            str(metadata.get("sequenceNumber", "")),
        )
        out.append({"recordId": record["recordId"], "result": "Ok", "data": base64.b64encode(line).decode()})
    return {"records": out}


def kinesis_records(event: dict[str, Any]) -> list[KinesisRecord]:
    """The records of a Lambda Kinesis event (one shard, as an event source mapping hands them)."""
    return [
        KinesisRecord(
            base64.b64decode(r["kinesis"]["data"]),
            round(float(r["kinesis"]["approximateArrivalTimestamp"]) * 1000),
            r["kinesis"]["partitionKey"],
            r["eventID"].partition(":")[0],
            r["kinesis"]["sequenceNumber"],
        )
        for r in event["Records"]
    ]


def raw_object(records: Sequence[KinesisRecord]) -> bytes:
    """The GZIP'd body of raw/ lines for `records`, in order."""
    lines = (
        raw_line(
            base64.b64encode(r.data).decode(), r.arrival_ms, r.partition_key, r.shard_id, r.sequence_number
        )
        for r in records
    )
    return gzip.compress(b"".join(lines), mtime=0)


def raw_object_key(delivery_stream: str, records: Sequence[KinesisRecord]) -> str:
    """Firehose's layout for the local stand-in, deterministic per batch: the oldest arrival picks the
    hour partition and the name's time (as Firehose's `!{timestamp}` does), the id is the batch's
    shard and first and last sequence numbers."""
    if not records:
        raise ValueError("no records to archive")
    oldest = min(r.arrival_ms for r in records)
    batch_id = f"{records[0].shard_id}.{records[0].sequence_number}-{records[-1].sequence_number}"
    return (
        f"{layout.raw_prefix(oldest)}{delivery_stream}-1-{layout.utc(oldest):%Y-%m-%d-%H-%M-%S}-{batch_id}.gz"
    )


def put_raw(lake: Lake, delivery_stream: str, records: Sequence[KinesisRecord]) -> str:
    """Archive one batch of `records` (one shard, in order) as one raw/ object; returns its key."""
    key = raw_object_key(delivery_stream, records)
    lake.put(key, raw_object(records))
    return key


def archive_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The local Firehose stand-in, as a Lambda Kinesis handler: one raw/ object per batch."""
    from pipeline.config import stage
    from pipeline.lake.store import s3_lake

    put_raw(s3_lake(), stage().raw_archive_stream, kinesis_records(event))
    return {"batchItemFailures": []}


def raw_keys(lake: Lake, start_ms: int, end_ms: int) -> list[str]:
    """Every raw object of the arrival hours overlapping [start_ms, end_ms), in arrival order."""
    keys: list[str] = []
    hour = start_ms - start_ms % _HOUR_MS
    while hour < end_ms:
        keys.extend(lake.keys(layout.raw_prefix(hour)))
        hour += _HOUR_MS
    return keys


def _object_arrival_ms(key: str) -> int:
    """The latest a record of `key` can have arrived: its name time, else the end of its hour."""
    match = _NAME_TIME.search(key.rsplit("/", 1)[-1])
    if match:
        return int(datetime.strptime(match[1], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC).timestamp() * 1000)
    hour = datetime.strptime(key[len(layout.RAW) :].rsplit("/", 1)[0], "year=%Y/month=%m/day=%d/hour=%H")
    return int((hour.replace(tzinfo=UTC) + timedelta(hours=1)).timestamp() * 1000) - 1


def _parse_line(line: bytes) -> KinesisRecord | None:
    """The record of a raw/ line, or None when the line is not one."""
    try:
        fields = json.loads(line)
        if not isinstance(fields, dict):
            return None
        arrival, strings = fields["arrival_ms"], [fields[name] for name in _STRING_FIELDS]
        if (
            not isinstance(arrival, int)
            or isinstance(arrival, bool)
            or not all(isinstance(s, str) for s in strings)
        ):
            return None
        data = base64.b64decode(fields["data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):  # JSONDecodeError is a ValueError
        return None
    return KinesisRecord(data, arrival, *strings)


def read_raw_object(key: str, body: bytes) -> list[RawRecord]:
    """The records of one raw/ object, in order; a line that is not a record line is kept as data."""
    try:
        text = gzip.decompress(body) if body.startswith(GZIP_MAGIC) else body
    except (OSError, EOFError) as exc:
        raise ValueError(f"{key}: not a readable GZIP object ({exc})") from exc
    records: list[RawRecord] = []
    fallback_arrival: int | None = None
    for n, line in enumerate(text.split(b"\n"), 1):
        if not line:
            continue
        origin = f"{key}:{n}"
        parsed = _parse_line(line)
        if parsed is not None:
            records.append(RawRecord(*parsed, origin=origin))
            continue
        if fallback_arrival is None:
            fallback_arrival = _object_arrival_ms(key)
        records.append(RawRecord(line, fallback_arrival, "", "", "", origin))
    return records
