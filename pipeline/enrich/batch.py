"""One Lambda invocation's work: Kinesis records in, enriched events to Kinesis, bad rows to the DLQ.

Records are staged one by one (the Powertools record handler calls `EnrichBatch.add`), then `deliver`
sends everything with a few bulk calls and names the input records that could not be delivered
anywhere: those, and only those, become batch item failures so the event source mapping retries them.
A bad row that reached the DLQ is a success: a poison record never blocks its shard.
"""

from __future__ import annotations

from binascii import a2b_base64
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import aws_kinesis_agg
import orjson

from pipeline.contract import BadRowReason, DecodeError, check_event_time_skew, decode
from pipeline.enrich.bad_rows import DeadLetterQueue, RecordOrigin, make_bad_row
from pipeline.enrich.enrichment import Pseudonymiser, enrich
from pipeline.produce.kinesis import PutResult
from pipeline.produce.kpl import DeaggregationError, deaggregate

KPL_MAGIC = aws_kinesis_agg.MAGIC


@lru_cache(maxsize=64)
def _stream_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _origin(
    record: dict[str, Any], subsequence_number: int | None, partition_key: str, arrival_ms: int
) -> RecordOrigin:
    """Where a bad row came from; made only for bad rows (stream and shard names cost a good event time)."""
    kinesis = record["kinesis"]
    return RecordOrigin(
        _stream_name(record["eventSourceARN"]),
        record["eventID"].partition(":")[0],
        kinesis["sequenceNumber"],
        subsequence_number,
        partition_key,
        arrival_ms,
    )


class EnrichedStreamWriter(Protocol):
    def put(self, records: Sequence[tuple[str, bytes]]) -> PutResult: ...


@dataclass
class BatchOutcome:
    """What one invocation did; `failed_sequence_numbers` are the batch item failures, in input order."""

    failed_sequence_numbers: list[str]
    kinesis_records: int
    events_in: int  # user records after de-aggregation
    deaggregated: int  # user records that came out of KPL-aggregated Kinesis records
    enriched: int
    bad_rows: Counter[str] = field(default_factory=Counter)
    undelivered_enriched: int = 0
    undelivered_bad_rows: int = 0

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": s} for s in self.failed_sequence_numbers]}


class EnrichBatch:
    def __init__(
        self,
        writer: EnrichedStreamWriter,
        dlq: DeadLetterQueue,
        pseudonymiser: Pseudonymiser,
        future_tolerance_s: int,
        decoder: Callable[[bytes], Any] = decode,
    ) -> None:
        self._writer = writer
        self._dlq = dlq
        self._pseudonymiser = pseudonymiser
        self._tolerance_s = future_tolerance_s
        self._tolerance_ms = future_tolerance_s * 1000
        self._decode = decoder
        self._sequence_numbers: list[str] = []
        self._good: list[tuple[str, bytes]] = []
        self._good_input: list[int] = []  # index into _sequence_numbers, per good event
        self._bad: list[dict[str, Any]] = []
        self._bad_input: list[int] = []
        self._events_in = 0
        self._deaggregated = 0

    def add(self, record: dict[str, Any]) -> None:
        """Stage one Lambda Kinesis record (the event's `Records[i]`). If it raises, nothing of the
        record stays staged: the caller reports it as a batch item failure and it comes back whole."""
        marks = (
            len(self._sequence_numbers),
            len(self._good),
            len(self._bad),
            self._events_in,
            self._deaggregated,
        )
        try:
            self._add(record)
        except Exception:
            del self._sequence_numbers[marks[0] :], self._good[marks[1] :], self._good_input[marks[1] :]
            del self._bad[marks[2] :], self._bad_input[marks[2] :]
            self._events_in, self._deaggregated = marks[3], marks[4]
            raise

    def _add(self, record: dict[str, Any]) -> None:
        kinesis = record["kinesis"]
        index = len(self._sequence_numbers)
        sequence_number = kinesis["sequenceNumber"]
        self._sequence_numbers.append(sequence_number)
        arrival_ms = round(float(kinesis["approximateArrivalTimestamp"]) * 1000)
        data = a2b_base64(kinesis["data"])  # what base64.b64decode does, minus its argument juggling
        partition_key = kinesis["partitionKey"]
        if not data.startswith(KPL_MAGIC):  # the common case: skip the de-aggregator's per-record checks
            self._events_in += 1
            self._stage_user_record(data, index, arrival_ms, record, None, partition_key)
            return
        try:
            user_records = deaggregate([record])
        except DeaggregationError as exc:
            self._events_in += 1
            origin = _origin(record, None, partition_key, arrival_ms)
            self._stage_bad(
                make_bad_row(BadRowReason.UNPARSEABLE, f"KPL aggregate: {exc.detail}", None, data, origin),
                index,
            )
            return
        aggregated = user_records[0].sub_sequence_number is not None if user_records else False
        self._events_in += len(user_records)
        self._deaggregated += len(user_records) if aggregated else 0
        for user in user_records:
            self._stage_user_record(
                user.data, index, arrival_ms, record, user.sub_sequence_number, user.partition_key
            )

    def _stage_user_record(
        self,
        data: bytes,
        index: int,
        arrival_ms: int,
        record: dict[str, Any],
        subsequence_number: int | None,
        partition_key: str,
    ) -> None:
        try:
            decoded = self._decode(data)
            event = decoded.event
            if event["event_time"] - arrival_ms > self._tolerance_ms:  # rare: then say why
                check_event_time_skew(event["event_time"], arrival_ms, self._tolerance_s)
        except DecodeError as exc:
            origin = _origin(record, subsequence_number, partition_key, arrival_ms)
            self._stage_bad(make_bad_row(exc.reason, exc.detail, exc.field, data, origin), index)
            return
        enrich(event, decoded.writer.version, arrival_ms, self._pseudonymiser)
        self._good.append((event["event_id"], orjson.dumps(event)))
        self._good_input.append(index)

    def _stage_bad(self, row: dict[str, Any], index: int) -> None:
        self._bad.append(row)
        self._bad_input.append(index)

    def deliver(self) -> BatchOutcome:
        """Put the enriched events, send the bad rows, and name the input records left undelivered."""
        failed_inputs: set[int] = set()
        undelivered_enriched = 0
        if self._good:
            result = self._writer.put(self._good)
            undelivered_enriched = len(result.failed)
            failed_inputs.update(self._good_input[i] for i in result.failed)
        undelivered_bad = self._dlq.send(self._bad) if self._bad else []
        failed_inputs.update(self._bad_input[i] for i in undelivered_bad)
        return BatchOutcome(
            failed_sequence_numbers=[self._sequence_numbers[i] for i in sorted(failed_inputs)],
            kinesis_records=len(self._sequence_numbers),
            events_in=self._events_in,
            deaggregated=self._deaggregated,
            enriched=len(self._good) - undelivered_enriched,
            bad_rows=Counter(row["reason"] for row in self._bad),
            undelivered_enriched=undelivered_enriched,
            undelivered_bad_rows=len(undelivered_bad),
        )
