"""Write user records to a Kinesis stream with PutRecords: batching within the service limits, optional
KPL aggregation, retry of only the failed entries, honest reporting of what still failed.

One writer per stream and thread: moto 5.2 loses records under concurrent puts to one stream, and the
per-shard ordering of a stream is only meaningful from a single writer anyway.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import filterfalse
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.produce.kpl import (
    AGGREGATE_MAX_BYTES,
    MAX_PARTITION_KEY_CHARS,
    MAX_RECORD_BYTES,
    KinesisRecord,
    UserRecord,
    aggregate,
    deaggregate,
)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1_048_576
# Entry- or call-level failures that succeed when tried again later; anything else is final.
RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "ServiceUnavailable",
        "ThrottlingException",
        "KMSThrottlingException",
        "LimitExceededException",
        "ConnectionError",
    }
)
RECORD_TOO_LARGE = "RecordTooLarge"
INVALID_PARTITION_KEY = "InvalidPartitionKey"
# Data up to this size fits the record limit with any valid key (at most 4 UTF-8 bytes a character).
_SURELY_SMALL = MAX_RECORD_BYTES - 4 * MAX_PARTITION_KEY_CHARS


@dataclass
class PutResult:
    sent: int  # user records accepted
    retried: int  # entry-level retries performed
    failed: list[int] = field(default_factory=list)  # indices of user records still failed after all attempts
    errors: dict[str, int] = field(default_factory=dict)  # error code -> count for the final failures


class KinesisWriter:
    aggregate_max_bytes = AGGREGATE_MAX_BYTES

    def __init__(
        self,
        client: Any,
        stream_name: str,
        aggregate: bool = True,
        max_attempts: int = 8,
        base_backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.aggregate = aggregate
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._jitter = random.Random()

    def put(self, records: Sequence[tuple[str, bytes]]) -> PutResult:
        """Put `(partition_key, data)` user records; returns what was accepted and what finally failed."""
        valid, failed, errors = _admit(records)
        if self.aggregate:
            entries = aggregate(records, valid, self.aggregate_max_bytes)
        else:
            entries = [KinesisRecord(records[i][0], records[i][1], (i,)) for i in valid]

        pending = entries
        retried = 0
        last_error: dict[int, str] = {}
        for attempt in range(max(1, self.max_attempts)):
            if attempt:
                retried += len(pending)
                cap = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1))
                time.sleep(self._jitter.uniform(0, cap))  # full jitter
            still: list[KinesisRecord] = []
            for batch in _batches(pending):
                for entry, code in zip(batch, self._put_batch(batch), strict=True):
                    if code is None:
                        continue
                    last_error[id(entry)] = code
                    if code in RETRYABLE:
                        still.append(entry)
                    else:
                        _fail(entry, code, failed, errors)
            pending = still
            if not pending:
                break
        for entry in pending:
            _fail(entry, last_error[id(entry)], failed, errors)
        sent = len(records) - len(failed)
        return PutResult(sent=sent, retried=retried, failed=sorted(failed), errors=dict(errors))

    def _put_batch(self, batch: list[KinesisRecord]) -> list[str | None]:
        """Error code per entry (None = accepted)."""
        try:
            response = self.client.put_records(
                StreamName=self.stream_name,
                Records=[{"PartitionKey": e.partition_key, "Data": e.data} for e in batch],
            )
        except ClientError as exc:
            return [exc.response.get("Error", {}).get("Code", "ClientError")] * len(batch)
        except BotoCoreError:  # connection reset, read timeout: the call may be retried as a whole
            return ["ConnectionError"] * len(batch)
        return [r.get("ErrorCode") for r in response["Records"]]


def _admit(records: Sequence[tuple[str, bytes]]) -> tuple[list[int], list[int], Counter[str]]:
    """The indices of the records Kinesis accepts, those of the others, and why they were refused.

    A comprehension marks the records that are surely fine (a loop of appends cost twice as much per
    record; maps over the lengths more still); only the few others are looked at one by one.
    """
    fine = [0 < len(key) <= MAX_PARTITION_KEY_CHARS and len(data) <= _SURELY_SMALL for key, data in records]
    positions = range(len(records))
    failed: list[int] = []
    errors: Counter[str] = Counter()
    for i in filterfalse(fine.__getitem__, positions):
        key, data = records[i]
        if not 1 <= len(key) <= MAX_PARTITION_KEY_CHARS:
            failed.append(i)
            errors[INVALID_PARTITION_KEY] += 1
        elif len(data) + len(key.encode()) > MAX_RECORD_BYTES:
            # Kinesis would reject the whole PutRecords call (ValidationException): refuse it here.
            failed.append(i)
            errors[RECORD_TOO_LARGE] += 1
    if not failed:
        return list(positions), failed, errors
    refused = set(failed)
    return list(filterfalse(refused.__contains__, positions)), failed, errors


def _fail(entry: KinesisRecord, code: str, failed: list[int], errors: Counter[str]) -> None:
    failed.extend(entry.user_indices)
    errors[code] += len(entry.user_indices)


def _batches(entries: list[KinesisRecord]) -> list[list[KinesisRecord]]:
    """Split into PutRecords calls of at most 500 entries and 5 MiB (data + partition keys)."""
    batches: list[list[KinesisRecord]] = []
    current: list[KinesisRecord] = []
    size = 0
    for entry in entries:
        if current and (len(current) == MAX_RECORDS_PER_CALL or size + entry.size > MAX_BYTES_PER_CALL):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        batches.append(current)
    return batches


def ensure_stream(client: Any, stream_name: str, shards: int) -> None:
    """Create `stream_name` with `shards` shards unless it exists, and wait until it is ACTIVE."""
    try:
        client.create_stream(StreamName=stream_name, ShardCount=shards)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("stream_exists").wait(
        StreamName=stream_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def read_stream(client: Any, stream_name: str, limit: int = 10_000) -> list[UserRecord]:
    """Every user record in the stream, shard by shard from TRIM_HORIZON, KPL aggregates unpacked.

    For checks and small tools: reads each shard until it returns nothing and is not behind its tip.
    `UserRecord.source_index` counts within one GetRecords response.
    """
    out: list[UserRecord] = []
    shards = client.list_shards(StreamName=stream_name)["Shards"]
    for shard in sorted(shards, key=lambda s: s["ShardId"]):
        iterator = client.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=limit)
            if not response["Records"] and not response.get("MillisBehindLatest"):
                break
            out.extend(deaggregate(response["Records"], data_format="Boto3"))
            iterator = response.get("NextShardIterator")
    return out
