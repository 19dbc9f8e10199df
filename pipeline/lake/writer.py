"""The lake writer: one Lambda batch of `events-enriched` or `metrics` -> Parquet objects, exactly once.

Every object of a batch is named after (stream, shard, first and last sequence number) of the batch,
so a retried batch overwrites the very same keys with the very same bytes (rows keep batch order, and
nothing in a file depends on when it was written). A batch spanning several partitions makes one
object per partition. File size is governed by the event source mapping
(`stage().lake_writer_mapping`: batch size and batching window): the Lambda batch is the buffer.

Input that does not fit the table's schema never fails the batch: it becomes a bad row in `bad/`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastavro import parse_schema
from fastavro.validation import ValidationError, validate

from pipeline.config import STREAMS
from pipeline.contract import BadRowReason, contract
from pipeline.lake import layout
from pipeline.lake.catalog import GlueCatalog, partition_of
from pipeline.lake.store import Lake
from pipeline.lake.tables import LakeTable, bad_rows_table, events_table, metrics_table
from pipeline.produce.kpl import DeaggregationError, UserRecord, deaggregate

ENRICHED = "events-enriched"
METRICS = "metrics"
_FIELD = re.compile(r"^\w+\.(\S+) is ")


@dataclass(frozen=True)
class KinesisBatch:
    stream: str  # physical stream name
    shard_id: str
    first_sequence: str
    last_sequence: str
    records: list[UserRecord]

    @property
    def logical_stream(self) -> str:
        for logical in STREAMS:
            if self.stream == logical or self.stream.endswith(f"-{logical}"):
                return logical
        raise ValueError(f"stream {self.stream!r} is none of {', '.join(STREAMS)}")

    @property
    def object_name(self) -> str:
        return layout.batch_object_name(self.stream, self.shard_id, self.first_sequence, self.last_sequence)

    @property
    def last_arrival_time(self) -> int:
        return max((r.arrival_ms for r in self.records), default=0)


def kinesis_batch(event: dict[str, Any]) -> KinesisBatch:
    """The batch a Kinesis event source mapping hands the function (always one shard). A Kinesis
    record that cannot be de-aggregated stays whole, and becomes a bad row when it does not parse."""
    records = event.get("Records") or []
    if not records:
        raise ValueError("a Kinesis Lambda event without Records")
    stream = records[0]["eventSourceARN"].split(":stream/", 1)[1]
    users: list[UserRecord] = []
    for index, record in enumerate(records):
        try:
            users.extend(deaggregate([record]))
        except DeaggregationError:
            kinesis = record.get("kinesis", {})
            data = base64.b64decode(kinesis.get("data", ""))
            arrival = round(float(kinesis.get("approximateArrivalTimestamp", 0)) * 1000)
            users.append(UserRecord(data, "", str(kinesis.get("sequenceNumber", "")), None, arrival, index))
    return KinesisBatch(
        stream=stream,
        shard_id=records[0]["eventID"].split(":", 1)[0],
        first_sequence=records[0]["kinesis"]["sequenceNumber"],
        last_sequence=records[-1]["kinesis"]["sequenceNumber"],
        records=users,
    )


@cache
def _events_table(event_type: str) -> LakeTable:
    return events_table(event_type)


@cache
def _metrics_table() -> LakeTable:
    return metrics_table()


@cache
def _parsed(table_name: str) -> Any:
    tables = {METRICS: _metrics_table(), "bad_rows": bad_rows_table()}
    table = tables.get(table_name) or _events_table(table_name.removeprefix("events_"))
    return parse_schema(table.avro)


class _Rejected(Exception):
    def __init__(self, reason: BadRowReason, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.field = reason, detail, field


def _check(row: Any, table: LakeTable) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise _Rejected(BadRowReason.SCHEMA_VIOLATION, f"a JSON {type(row).__name__}, not an object")
    schema = _parsed(table.name)
    # Without raise_errors fastavro builds no error objects for union branches: 8x faster when valid.
    if validate(row, schema, raise_errors=False):
        return row
    try:
        validate(row, schema, raise_errors=True)
    except ValidationError as exc:
        message = json.loads(str(exc))[0] if str(exc).startswith("[") else str(exc)
        match = _FIELD.match(message)
        raise _Rejected(
            BadRowReason.SCHEMA_VIOLATION, f"{table.name}: {message}", match[1] if match else None
        ) from None
    return row


def _route(row: Any, logical_stream: str) -> tuple[LakeTable, str]:
    """The table and partition prefix one decoded row belongs to."""
    if logical_stream == METRICS:
        table, field = _metrics_table(), "window_start"
    else:
        event_type = row.get("event_type") if isinstance(row, dict) else None
        if event_type not in contract().versions:
            raise _Rejected(
                BadRowReason.UNKNOWN_EVENT_TYPE, f"event_type {event_type!r} is not in the contract"
            )
        table, field = _events_table(event_type), "event_time"
    row = _check(row, table)
    try:
        if logical_stream == METRICS:
            return table, layout.metrics_partition(row[field])
        return table, layout.events_partition(row["event_type"], row[field])
    except (ValueError, OverflowError, OSError):  # no calendar date: outside datetime's range
        raise _Rejected(
            BadRowReason.TIMESTAMP_OUT_OF_RANGE, f"{field} {row[field]} has no date", field
        ) from None


def _bad_row(record: UserRecord, batch: KinesisBatch, error: _Rejected, row: Any) -> dict[str, Any]:
    enrichment = row.get("enrichment") if isinstance(row, dict) else None
    return {
        "reason": str(error.reason),
        "detail": error.detail,
        "field": error.field,
        "payload_base64": base64.b64encode(record.data).decode(),
        "payload_truncated": False,
        "payload_sha256": hashlib.sha256(record.data).hexdigest(),
        "payload_bytes": len(record.data),
        "stream": batch.stream,
        "shard_id": batch.shard_id,
        "sequence_number": record.sequence_number,
        "subsequence_number": record.sub_sequence_number,
        "partition_key": record.partition_key or None,
        "arrival_time": record.arrival_ms,
        "enricher_version": str(enrichment.get("enricher_version", ""))
        if isinstance(enrichment, dict)
        else "",
        # Not the wall clock: a retried batch must rewrite byte-identical objects.
        "failed_at": batch.last_arrival_time,
    }


def parquet_bytes(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), sink, compression="snappy")
    return bytes(sink.getvalue().to_pybytes())


def lake_objects(batch: KinesisBatch) -> dict[str, bytes]:
    """Object key -> Parquet bytes for one batch: one object per (table, partition) it touches."""
    logical = batch.logical_stream
    if logical not in (ENRICHED, METRICS):
        raise ValueError(f"the lake writer consumes {ENRICHED} and {METRICS}, not {batch.stream}")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    tables: dict[str, LakeTable] = {}
    for record in batch.records:
        row: Any = None
        try:
            try:
                row = orjson.loads(record.data)
            except orjson.JSONDecodeError as exc:
                raise _Rejected(BadRowReason.UNPARSEABLE, f"not JSON: {exc}") from None
            table, partition = _route(row, logical)
        except _Rejected as error:
            bad = _bad_row(record, batch, error, row)
            table, partition, row = bad_rows_table(), layout.bad_partition(bad["failed_at"]), bad
        groups[partition].append(row)
        tables[partition] = table
    return {
        f"{partition}{batch.object_name}": parquet_bytes(rows, tables[partition].data_schema)
        for partition, rows in groups.items()
    }


def write_batch(event: dict[str, Any], lake: Lake, catalog: GlueCatalog | None = None) -> dict[str, int]:
    """Write one Lambda batch to the lake and register its new partitions in `catalog`; returns rows
    per object key. Raises if S3 or the catalog fails: the mapping then retries the whole batch,
    which rewrites the same keys and registers what is still missing."""
    batch = kinesis_batch(event)
    objects = lake_objects(batch)
    for key, body in objects.items():
        lake.put(key, body)
    # After the puts, so a registered partition always has objects; a failure here still fails the
    # batch, and its retry registers what is missing.
    if catalog is not None:
        catalog.register(partition_of(key) for key in objects)
    return {key: pq.read_metadata(pa.BufferReader(body)).num_rows for key, body in objects.items()}
