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
from operator import itemgetter
from typing import Any, Literal

import aws_kinesis_agg

# aws-kinesis-agg's generated protobuf modules import each other by bare name: `aggregator` puts its own
# folder on sys.path first, so take `messages_pb2` from it rather than importing it directly.
from aws_kinesis_agg.aggregator import messages_pb2
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

from pipeline.produce.varint import TABLE_SIZE, VARINTS, varint

MAX_RECORD_BYTES = 1_048_576  # Kinesis: data blob + partition key, per record
MAX_PARTITION_KEY_CHARS = 256
AGGREGATE_MAX_BYTES = 51_200  # KPL AggregationMaxSize default
# Overhead of an aggregate around one user record: magic, digest, table and field headers.
_FRAME = len(aws_kinesis_agg.MAGIC) + aws_kinesis_agg.DIGEST_SIZE
_AGG_OVERHEAD = _FRAME + 16

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


# Field headers of the aggregate's protobuf (`messages.proto` of aws-kinesis-agg):
# AggregatedRecord.partition_key_table = 1 (string), .records = 3 (message);
# Record.partition_key_index = 1 (varint), Record.data = 3 (bytes).
_KEY_TAG = b"\x0a"
_RECORD_TAG = b"\x1a"
# A record entry's bytes between its length and its data: key index field and the data field's tag.
_KEY_INDEX_FIELD = [b"\x08" + v + _RECORD_TAG for v in VARINTS]
# The usual entry: a key index below 128 (a one-byte varint, so a 3-byte index field) and data shorter
# than TABLE_SIZE. Its header before the index field (records tag, entry length) and its size in the
# aggregate depend on the data length n alone: tables by n, one lookup each instead of the arithmetic.
_SMALL_INDEX = 128
_ENTRY_HEADS = [_RECORD_TAG + varint(3 + len(VARINTS[n]) + n) for n in range(TABLE_SIZE)]
_ENTRY_COSTS = [len(_ENTRY_HEADS[n]) + 3 + len(VARINTS[n]) + n for n in range(TABLE_SIZE)]


def _key_entry(key: str) -> bytes:
    """A partition_key_table entry."""
    encoded = key.encode()
    return _KEY_TAG + varint(len(encoded)) + encoded


def _entry_header(n: int, key_index: int) -> tuple[bytes, bytes, bytes, int]:
    """Any entry of `n` data bytes: its header, key index field, data length and size in the aggregate."""
    index_field = (
        _KEY_INDEX_FIELD[key_index] if key_index < TABLE_SIZE else b"\x08" + varint(key_index) + _RECORD_TAG
    )
    data_length = varint(n)
    inner = len(index_field) + len(data_length) + n
    head = _RECORD_TAG + varint(inner)
    return head, index_field, data_length, len(head) + inner


def aggregate(
    records: Sequence[tuple[str, bytes]],
    indices: Iterable[int] | None = None,
    max_bytes: int = AGGREGATE_MAX_BYTES,
) -> list[KinesisRecord]:
    """Pack `records[i]` for i in `indices` (default: all) into aggregates of at most `max_bytes`.

    A single-record aggregate is sent plain (smaller, and every consumer reads it). Records too big for
    an aggregate of `max_bytes` are sent plain too; the caller checks the Kinesis per-record limit.

    The message is aws-kinesis-agg's protobuf (`messages_pb2.AggregatedRecord`, what `deaggregate` and
    every KPL consumer parse) behind its magic and MD5 digest, written here as the protobuf wire bytes
    of that message (the same bytes `SerializeToString` gives, tested): its `AggRecord` builder costs
    about 6 us a record in size bookkeeping, and building the message object about 1 us, more than
    the rest of aggregation together. Building the bytes gives each record's exact size for free.
    """
    out: list[KinesisRecord] = []
    keys: dict[str, int] = {}
    key_entries: list[bytes] = []  # the partition key table, encoded
    entries: list[bytes] = []  # the records, encoded: header, key index field, data length, data
    members: list[int] = []
    size = _FRAME
    # Locals: the loop below runs per user record.
    heads, costs, index_fields, varints = _ENTRY_HEADS, _ENTRY_COSTS, _KEY_INDEX_FIELD, VARINTS
    key_entry_of: dict[str, bytes] = {}  # table entries by key: a user's key recurs in later aggregates
    room = max_bytes - _AGG_OVERHEAD  # for a user record and its key
    # Data up to `quick_room` bytes fits with any of the keys, which spares most records the exact test.
    quick_room = room - 4 * max(map(len, map(itemgetter(0), records)), default=0)

    def flush() -> None:
        if len(members) == 1:
            key, data = records[members[0]]
            out.append(KinesisRecord(key, data, (members[0],)))
        elif members:
            table, packed = b"".join(key_entries), b"".join(entries)
            digest = hashlib.md5(table)
            digest.update(packed)
            data = b"".join((aws_kinesis_agg.MAGIC, table, packed, digest.digest()))
            out.append(KinesisRecord(next(iter(keys)), data, tuple(members)))

    for i in range(len(records)) if indices is None else indices:
        key, data = records[i]
        n = len(data)
        if n > quick_room and n + 4 * len(key) > room:  # 4: the most UTF-8 bytes per character
            out.append(KinesisRecord(key, data, (i,)))
            continue
        key_index = keys.get(key)
        if key_index is None:  # a new key: a partition_key_table entry
            key_index = len(keys)
            key_entry = key_entry_of.get(key)
            if key_entry is None:
                key_entry = key_entry_of[key] = _key_entry(key)
            size += len(key_entry)
        else:
            key_entry = b""
        if n < TABLE_SIZE and key_index < _SMALL_INDEX:
            head, index_field, data_length, cost = heads[n], index_fields[key_index], varints[n], costs[n]
        else:
            head, index_field, data_length, cost = _entry_header(n, key_index)
        size += cost
        if size > max_bytes and members:  # this record starts the next aggregate
            flush()
            keys, key_entries, entries, members = {}, [], [], []
            key_index = 0
            key_entry = key_entry_of[key]
            head, index_field, data_length, cost = _entry_header(n, 0)
            size = _FRAME + len(key_entry) + cost
        if key_entry:
            keys[key] = key_index
            key_entries.append(key_entry)
        entries += (head, index_field, data_length, data)
        members.append(i)
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
