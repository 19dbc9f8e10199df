from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from pipeline.produce.kinesis import (
    MAX_BYTES_PER_CALL,
    MAX_RECORDS_PER_CALL,
    RECORD_TOO_LARGE,
    KinesisWriter,
)
from pipeline.produce.kpl import deaggregate

PTEE = "ProvisionedThroughputExceededException"


class FakeKinesis:
    """Stores accepted entries; `fail(call_number, position, entry)` returns an error code or None."""

    def __init__(self, fail: Callable[[int, int, dict[str, Any]], str | None] = lambda c, p, e: None) -> None:
        self.fail = fail
        self.calls: list[list[dict[str, Any]]] = []
        self.stored: list[dict[str, Any]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        out = []
        for position, entry in enumerate(Records):
            code = self.fail(len(self.calls), position, entry)
            if code:
                out.append({"ErrorCode": code, "ErrorMessage": "injected"})
            else:
                self.stored.append(entry)
                out.append({"SequenceNumber": str(len(self.stored)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in out), "Records": out}

    def user_records(self) -> list[tuple[str, bytes]]:
        boto3_shaped = [
            {
                "SequenceNumber": str(i),
                "PartitionKey": e["PartitionKey"],
                "Data": e["Data"],
                "ApproximateArrivalTimestamp": 0,
            }
            for i, e in enumerate(self.stored)
        ]
        return [(u.partition_key, u.data) for u in deaggregate(boto3_shaped, data_format="Boto3")]


RECORDS = [(f"key-{i % 13}", f"event-{i:05d}".encode() + b"." * (i % 50)) for i in range(2_000)]


def _writer(client: Any, aggregate: bool, attempts: int = 8) -> KinesisWriter:
    return KinesisWriter(
        client, "s", aggregate=aggregate, max_attempts=attempts, base_backoff_s=0.0001, max_backoff_s=0.001
    )


def test_plain_puts_respect_the_call_limits() -> None:
    big = [(f"k{i}", bytes(40_000)) for i in range(300)]  # 12 MB: the 5 MiB limit binds before the 500
    client = FakeKinesis()
    result = _writer(client, aggregate=False).put(RECORDS + big)
    assert result.sent == len(RECORDS) + len(big) and result.failed == [] and result.retried == 0
    for call in client.calls:
        assert len(call) <= MAX_RECORDS_PER_CALL
        assert sum(len(e["Data"]) + len(e["PartitionKey"]) for e in call) <= MAX_BYTES_PER_CALL
    assert [(e["PartitionKey"], e["Data"]) for e in client.stored] == RECORDS + big


def test_only_failed_entries_are_retried_and_nothing_is_lost_or_doubled() -> None:
    # Every third entry of the first five calls is throttled.
    client = FakeKinesis(lambda call, pos, e: PTEE if call <= 5 and pos % 3 == 0 else None)
    result = _writer(client, aggregate=False).put(RECORDS)
    assert (result.sent, result.failed, result.errors) == (2_000, [], {})
    first_attempts = sum(len(c) for c in client.calls[:4])
    assert first_attempts == 2_000  # 4 calls of 500
    assert result.retried == sum(len(c) for c in client.calls) - 2_000 > 0
    assert sorted(client.user_records()) == sorted(RECORDS)


def test_aggregated_partial_failures_are_retried_without_loss() -> None:
    client = FakeKinesis(lambda call, pos, e: PTEE if call <= 3 and pos % 2 == 0 else None)
    result = _writer(client, aggregate=True).put(RECORDS)
    assert (result.sent, result.failed) == (2_000, [])
    assert result.retried > 0
    assert client.user_records() != RECORDS  # retried aggregates land later ...
    assert sorted(client.user_records()) == sorted(RECORDS)  # ... but every record exactly once


def test_a_failed_aggregate_reports_every_user_record_in_it() -> None:
    client = FakeKinesis(lambda call, pos, e: PTEE if pos == 0 else None)
    result = _writer(client, aggregate=True, attempts=3).put(RECORDS)
    stored = {data for _, data in client.user_records()}
    lost = [i for i, (_, data) in enumerate(RECORDS) if data not in stored]
    assert result.failed == lost and len(lost) > 1
    assert result.errors == {PTEE: len(lost)}
    assert result.sent == 2_000 - len(lost)


def test_non_retryable_codes_fail_at_once() -> None:
    client = FakeKinesis(lambda call, pos, e: "KMSAccessDeniedException" if pos < 2 else None)
    result = _writer(client, aggregate=False).put(RECORDS[:10])
    assert result.failed == [0, 1] and result.errors == {"KMSAccessDeniedException": 2}
    assert (len(client.calls), result.retried) == (1, 0)


def test_a_throttled_call_is_retried_as_a_whole() -> None:
    class Throttled(FakeKinesis):
        def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
            if len(self.calls) < 2:
                self.calls.append(Records)
                raise ClientError(
                    {"Error": {"Code": "LimitExceededException", "Message": "slow down"}}, "PutRecords"
                )
            return super().put_records(StreamName, Records)

    client = Throttled()
    result = _writer(client, aggregate=False).put(RECORDS[:10])
    assert (result.sent, result.retried, len(client.calls)) == (10, 20, 3)


def test_oversize_records_are_refused_before_sending() -> None:
    records = [RECORDS[0], ("k", bytes(1_048_576)), RECORDS[1], ("", b"no key")]
    for aggregate in (True, False):
        client = FakeKinesis()
        result = _writer(client, aggregate).put(records)
        assert result.failed == [1, 3]
        assert result.errors == {RECORD_TOO_LARGE: 1, "InvalidPartitionKey": 1}
        assert result.sent == 2
        assert sorted(client.user_records()) == sorted([RECORDS[0], RECORDS[1]])


def test_records_at_the_limit_are_judged_by_their_encoded_size() -> None:
    # Data this long passes only with a key of few UTF-8 bytes: such records are checked one by one.
    near = 1_048_576 - 300
    records = [
        RECORDS[0],
        ("k" * 250, bytes(near)),  # 250 bytes of key: fits
        ("ü" * 250, bytes(near)),  # 500 bytes of key: too large
        ("k" * 257, b"x"),  # key too long
        RECORDS[1],
    ]
    client = FakeKinesis()
    result = _writer(client, aggregate=True).put(records)
    assert result.failed == [2, 3]
    assert result.errors == {RECORD_TOO_LARGE: 1, "InvalidPartitionKey": 1}
    assert result.sent == 3
    assert sorted(client.user_records()) == sorted([RECORDS[0], records[1], RECORDS[1]])
