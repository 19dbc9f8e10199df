import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import AggRecord, messages_pb2
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.produce.kpl import (
    AGGREGATE_MAX_BYTES,
    DeaggregationError,
    KinesisRecord,
    aggregate,
    deaggregate,
)

USER_RECORDS = [(f"user-{i % 7}", f'{{"n": {i}, "pad": "{"x" * (i % 300)}"}}'.encode()) for i in range(1_000)]
ARRIVAL = datetime(2025, 11, 26, 9, 0, 0, 250_000, tzinfo=UTC)


def _boto3(records: list[KinesisRecord]) -> list[dict[str, Any]]:
    return [
        {
            "SequenceNumber": f"{i:056d}",
            "PartitionKey": r.partition_key,
            "Data": r.data,
            "ApproximateArrivalTimestamp": ARRIVAL,
        }
        for i, r in enumerate(records)
    ]


def _lambda(records: list[KinesisRecord]) -> list[dict[str, Any]]:
    return [
        {
            "eventSource": "aws:kinesis",
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r.partition_key,
                "sequenceNumber": f"{i:056d}",
                "data": base64.b64encode(r.data).decode(),
                "approximateArrivalTimestamp": ARRIVAL.timestamp(),
            },
        }
        for i, r in enumerate(records)
    ]


def test_aggregates_stay_under_the_limit_and_index_every_user_record() -> None:
    packed = aggregate(USER_RECORDS)
    assert 1 < len(packed) < len(USER_RECORDS) / 20
    assert all(len(r.data) <= AGGREGATE_MAX_BYTES for r in packed)
    assert all(len(r.data) > AGGREGATE_MAX_BYTES - 400 for r in packed[:-1])  # full, not fragmented
    assert sorted(i for r in packed for i in r.user_indices) == list(range(len(USER_RECORDS)))


@pytest.mark.parametrize("shape", ["Boto3", "Lambda"])
def test_deaggregate_returns_every_user_record_in_order(shape: str) -> None:
    packed = aggregate(USER_RECORDS)
    records = _boto3(packed) if shape == "Boto3" else _lambda(packed)
    users = deaggregate(records, data_format=shape)  # type: ignore[arg-type]
    assert [(u.partition_key, u.data) for u in users] == USER_RECORDS
    assert {u.arrival_ms for u in users} == {1_764_147_600_250}
    first = [u for u in users if u.source_index == 0]
    assert [u.sub_sequence_number for u in first] == list(range(len(packed[0].user_indices)))


def test_plain_records_and_single_record_aggregates_pass_through_unchanged() -> None:
    packed = aggregate([("k", b"alone")])
    assert packed == [KinesisRecord("k", b"alone", (0,))]
    users = deaggregate(_boto3(packed), data_format="Boto3")
    assert [(u.data, u.sub_sequence_number) for u in users] == [(b"alone", None)]


def test_a_record_too_big_for_an_aggregate_travels_plain() -> None:
    big = ("big", b"y" * (AGGREGATE_MAX_BYTES + 10))
    packed = aggregate([USER_RECORDS[0], big, USER_RECORDS[1]])
    assert KinesisRecord("big", big[1], (1,)) in packed
    users = deaggregate(_boto3(packed), data_format="Boto3")
    assert sorted(u.data for u in users) == sorted([USER_RECORDS[0][1], big[1], USER_RECORDS[1][1]])


def test_only_selected_indices_are_packed() -> None:
    packed = aggregate(USER_RECORDS, indices=[3, 5, 8])
    assert sorted(i for r in packed for i in r.user_indices) == [3, 5, 8]


@pytest.mark.parametrize("missing", ["approximateArrivalTimestamp", "kinesisSchemaVersion"])
def test_a_lambda_record_missing_a_field_raises_instead_of_vanishing(missing: str) -> None:
    records = _lambda(aggregate(USER_RECORDS[:10]))
    del records[0]["kinesis"][missing]
    with pytest.raises(DeaggregationError, match=missing) as exc:
        deaggregate(records)
    assert exc.value.source_index == 0


def test_a_corrupt_aggregate_raises_instead_of_vanishing() -> None:
    agg = AggRecord()
    agg.add_user_record("a", b"one")
    agg.add_user_record("b", b"two")
    message = messages_pb2.AggregatedRecord()
    message.ParseFromString(agg.get_contents()[2][4:-16])
    message.records[1].partition_key_index = 9  # points past the key table
    body = message.SerializeToString()
    data = agg.get_contents()[2][:4] + body + hashlib.md5(body).digest()
    with pytest.raises(DeaggregationError, match="holds 2 user records"):
        deaggregate(_boto3([KinesisRecord("a", data, (0, 1))]), data_format="Boto3")


def test_bytes_that_only_look_like_an_aggregate_are_one_plain_record() -> None:
    data = b"\xf3\x89\x9a\xc2" + b"garbage" * 10
    users = deaggregate(_boto3([KinesisRecord("k", data, (0,))]), data_format="Boto3")
    assert [(u.data, u.sub_sequence_number) for u in users] == [(data, None)]


def _library_bytes(records: list[tuple[str, bytes]]) -> bytes:
    """The aggregate of `records` as aws-kinesis-agg's protobuf message serializes it."""
    message = messages_pb2.AggregatedRecord()
    keys = list(dict.fromkeys(key for key, _ in records))
    message.partition_key_table.extend(keys)
    for key, data in records:
        message.records.add(partition_key_index=keys.index(key), data=data)
    body = message.SerializeToString()
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body).digest()


def test_aggregates_are_the_bytes_of_the_library_message() -> None:
    # > 128 keys (two-byte key indices), non-ASCII keys, data of one-, two- and three-byte lengths.
    records = [(f"ключ-{i % 150}", bytes([i % 256]) * (i % 7 * 3000 + i % 200)) for i in range(600)]
    packed = aggregate(records)
    assert len(packed) > 5
    for entry in packed:
        assert entry.data == _library_bytes([records[i] for i in entry.user_indices])
        assert entry.partition_key == records[entry.user_indices[0]][0]


@st.composite
def _records_and_limit(draw: st.DrawFn) -> tuple[list[tuple[str, bytes]], int]:
    """Records that each fit an aggregate of their own; keys repeat, and exceed 128 in an aggregate."""
    max_bytes = draw(st.one_of(st.integers(200, 12_000), st.just(AGGREGATE_MAX_BYTES)))
    keys = draw(st.sampled_from([2, 20, 300]))
    largest = draw(st.sampled_from([8, 64, max_bytes // 4]))
    key = st.builds(lambda p, i: f"{p}{i}", st.sampled_from(["k", "ключ-", "user-"]), st.integers(0, keys))
    data = st.integers(0, largest).map(lambda n: b"d" * n)
    return draw(st.lists(st.tuples(key, data), max_size=600)), max_bytes


@settings(max_examples=200, deadline=None)
@given(_records_and_limit())
# Over 128 distinct keys, each once: two-byte key indices make an aggregate longer than its estimate.
@example(([(f"user-{i}", b"d" * (i % 9)) for i in range(600)], 3_000))
def test_aggregates_fill_greedily_in_order_as_the_library_writes_them(
    case: tuple[list[tuple[str, bytes]], int],
) -> None:
    # As the KPL fills them: records in order, each aggregate closed only when the next would not fit.
    records, max_bytes = case
    packed = aggregate(records, max_bytes=max_bytes)
    assert [i for r in packed for i in r.user_indices] == list(range(len(records)))
    for k, entry in enumerate(packed):
        members = [records[i] for i in entry.user_indices]
        if len(members) == 1:
            assert (entry.partition_key, entry.data) == members[0]
        else:
            assert (entry.partition_key, entry.data) == (members[0][0], _library_bytes(members))
        assert len(_library_bytes(members)) <= max_bytes
        if k + 1 < len(packed):
            assert len(_library_bytes([*members, records[packed[k + 1].user_indices[0]]])) > max_bytes
