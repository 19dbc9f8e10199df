"""KPL record aggregation (the `aws-kinesis-agg` format): pack many user records into one Kinesis record,
and unpack them again without ever dropping one silently.

Aggregates follow the KPL defaults: at most `AGGREGATE_MAX_BYTES` (KPL `AggregationMaxSize`, 50 KiB), so
a consumer batch stays small; a user record that does not fit an aggregate of its own travels plain,
as the KPL does. The aggregate takes the partition key of its first user record (aws-kinesis-agg's
rule), so aggregates, not user records, are what spreads over shards.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import aws_kinesis_agg

# aws-kinesis-agg's generated protobuf modules import each other by bare name: `aggregator` puts its own
# folder on sys.path first, so take `messages_pb2` from it rather than importing it directly.
from aws_kinesis_agg.aggregator import messages_pb2
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

MAX_RECORD_BYTES = 1_048_576  # Kinesis: data blob + partition key, per record
MAX_PARTITION_KEY_CHARS = 256
AGGREGATE_MAX_BYTES = 51_200  # KPL AggregationMaxSize default
# Overhead of an aggregate around one user record: magic, digest, table and field headers.
_FRAME = len(aws_kinesis_agg.MAGIC) + aws_kinesis_agg.DIGEST_SIZE
_AGG_OVERHEAD = _FRAME + 16
_RECORD_MAX_OVERHEAD = 16  # tags and varints of one record entry: at most 1+4 + 1+3 + 1+4 bytes

DataFormat = Literal["Boto3", "Lambda"]


@dataclass(frozen=True)
class KinesisRecord:
    """One PutRecords entry: a plain user record or an aggregate of several."""

    partition_key: str
    data: bytes
    user_indices: tuple[int, ...]  # positions of its user records in the input sequence

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


def _varint_size(n: int) -> int:
    return 1 if n < 0x80 else 2 if n < 0x4000 else 3 if n < 0x200000 else 4 if n < 0x10000000 else 5


def aggregate(
    records: Sequence[tuple[str, bytes]],
    indices: Iterable[int] | None = None,
    max_bytes: int = AGGREGATE_MAX_BYTES,
) -> list[KinesisRecord]:
    """Pack `records[i]` for i in `indices` (default: all) into aggregates of at most `max_bytes`.

    A single-record aggregate is sent plain (smaller, and every consumer reads it). Records too big for
    an aggregate of `max_bytes` are sent plain too; the caller checks the Kinesis per-record limit.

    The message is aws-kinesis-agg's own protobuf (`messages_pb2.AggregatedRecord`) behind its magic
    and MD5 digest; its `AggRecord` builder is not used because its per-record Python size bookkeeping
    costs about 6 us a record, more than the rest of aggregation together. The size arithmetic below is
    the protobuf encoding of the same message.
    """
    out: list[KinesisRecord] = []
    keys: dict[str, int] = {}
    members: list[int] = []
    entries: list[tuple[int, bytes]] = []  # (partition key index, data)
    size = _FRAME

    def flush() -> None:
        if len(members) == 1:
            key, data = records[members[0]]
            out.append(KinesisRecord(key, data, (members[0],)))
        elif members:
            message = messages_pb2.AggregatedRecord()
            message.partition_key_table.extend(keys)
            for key_index, data in entries:
                message.records.add(partition_key_index=key_index, data=data)
            body = message.SerializeToString()
            out.append(
                KinesisRecord(
                    next(iter(keys)),
                    aws_kinesis_agg.MAGIC + body + hashlib.md5(body).digest(),
                    tuple(members),
                )
            )

    for i in range(len(records)) if indices is None else indices:
        key, data = records[i]
        n = len(data)
        if n + 4 * len(key) + _AGG_OVERHEAD > max_bytes:  # 4: the most UTF-8 bytes per character
            out.append(KinesisRecord(key, data, (i,)))
            continue
        n_size = 1 if n < 0x80 else 2 if n < 0x4000 else 3 if n < 0x200000 else 4
        key_index = keys.get(key)
        if key_index is None or size + _RECORD_MAX_OVERHEAD + n > max_bytes:
            # Exact protobuf sizes only near the limit or for a new key: a cheap bound otherwise.
            if key_index is None:
                key_index = len(keys)
                key_bytes = len(key.encode())
                cost = 1 + _varint_size(key_bytes) + key_bytes
            else:
                cost = 0
            inner = 2 + _varint_size(key_index) + n_size + n
            cost += 1 + _varint_size(inner) + inner
            if size + cost > max_bytes and members:
                flush()
                keys, members, entries, size = {}, [], [], _FRAME
                key_index = 0
                key_bytes = len(key.encode())
                inner = 3 + n_size + n
                cost = 1 + _varint_size(key_bytes) + key_bytes + 1 + _varint_size(inner) + inner
            keys.setdefault(key, key_index)
        else:
            inner = 2 + (1 if key_index < 0x80 else 2 if key_index < 0x4000 else 3) + n_size + n
            cost = 1 + (1 if inner < 0x80 else 2 if inner < 0x4000 else 3 if inner < 0x200000 else 4) + inner
        members.append(i)
        entries.append((key_index, data))
        size += cost
    flush()
    return out


@dataclass(frozen=True)
class UserRecord:
    """A user record as the producer put it, with where it was found in the stream."""

    data: bytes
    partition_key: str
    sequence_number: str
    sub_sequence_number: int | None  # position inside a KPL aggregate; None for a plain record
    arrival_ms: int  # approximate arrival timestamp of the Kinesis record, epoch millis
    source_index: int  # position of the Kinesis record in the input sequence


class DeaggregationError(ValueError):
    """A Kinesis record that cannot be unpacked; names the record so the caller can dead-letter it."""

    def __init__(self, source_index: int, sequence_number: str | None, detail: str) -> None:
        super().__init__(f"record {source_index} (sequence {sequence_number}): {detail}")
        self.source_index = source_index
        self.sequence_number = sequence_number
        self.detail = detail


# What aws-kinesis-agg copies into every user record (Lambda names; boto3 records are mapped onto them).
_REQUIRED = ("kinesisSchemaVersion", "sequenceNumber", "partitionKey", "approximateArrivalTimestamp", "data")


def _arrival_ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)  # Lambda: epoch seconds with a fraction


def _aggregated_count(data: bytes) -> int | None:
    """How many user records an aggregate holds, or None when `data` is not an aggregate (same test as
    the library: magic, MD5 digest, parseable protobuf)."""
    magic, digest = aws_kinesis_agg.MAGIC, aws_kinesis_agg.DIGEST_SIZE
    if not data.startswith(magic) or len(data) <= len(magic) + digest:
        return None
    body = data[len(magic) : -digest]
    if hashlib.md5(body).digest() != data[-digest:]:
        return None
    message = messages_pb2.AggregatedRecord()
    try:
        message.ParseFromString(body)
    except Exception:  # protobuf's DecodeError: then it is a plain record that happens to match the magic
        return None
    return len(message.records)


def deaggregate(records: Sequence[Mapping[str, Any]], data_format: DataFormat = "Lambda") -> list[UserRecord]:
    """Every user record in `records` (Lambda event records, or boto3 GetRecords records).

    aws-kinesis-agg silently drops the records of an aggregate when a field it copies is missing or an
    index is corrupt (it only prints to stderr); here that raises `DeaggregationError` instead.
    """
    out: list[UserRecord] = []
    for index, record in enumerate(records):
        fields: Mapping[str, Any] = (
            record.get("kinesis", {})
            if data_format == "Lambda"
            else {
                "kinesisSchemaVersion": "boto3",
                "sequenceNumber": record.get("SequenceNumber"),
                "partitionKey": record.get("PartitionKey"),
                "approximateArrivalTimestamp": record.get("ApproximateArrivalTimestamp"),
                "data": record.get("Data"),
            }
        )
        missing = [k for k in _REQUIRED if fields.get(k) is None]
        sequence = fields.get("sequenceNumber")
        if missing:
            raise DeaggregationError(index, sequence, f"missing {', '.join(missing)}")
        arrival_ms = _arrival_ms(fields["approximateArrivalTimestamp"])
        raw = base64.b64decode(fields["data"]) if data_format == "Lambda" else bytes(fields["data"])
        expected = _aggregated_count(raw)
        if expected is None:
            out.append(UserRecord(raw, fields["partitionKey"], str(sequence), None, arrival_ms, index))
            continue
        found = 0
        for user in iter_deaggregate_records(
            [record], data_format=data_format if data_format == "Boto3" else None
        ):
            k = user["kinesis"]
            out.append(
                UserRecord(
                    base64.b64decode(k["data"]),
                    k["partitionKey"],
                    str(k["sequenceNumber"]),
                    int(k["subSequenceNumber"]),
                    arrival_ms,
                    index,
                )
            )
            found += 1
        if found != expected:
            del out[len(out) - found :]
            raise DeaggregationError(
                index, sequence, f"aggregate holds {expected} user records, aws-kinesis-agg yielded {found}"
            )
    return out
