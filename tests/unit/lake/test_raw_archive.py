"""The raw/ line format: Firehose's transformation, the local archive, reading back (pipeline.lake.raw)."""

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.contract.codec import WireFormat, encode_avro
from pipeline.lake.raw import (
    KinesisRecord,
    RawRecord,
    firehose_transform,
    kinesis_records,
    put_raw,
    raw_keys,
    read_raw_object,
)
from pipeline.lake.replay import ReplayReport, enrich_records
from pipeline.lake.store import Lake, local_lake
from pipeline.local.event_source_mapping import MappingIdentity, StreamRecord, lambda_event
from pipeline.produce.kpl import aggregate

FIXTURES = Path(__file__).parents[2] / "fixtures"
EXAMPLES = json.loads((FIXTURES / "events/examples.json").read_text())
T = 1764151200000  # 2025-11-26T10:00:00Z
DAY = 86_400_000
ARCHIVE = "rta-local-raw-archive"
IDENTITY = MappingIdentity(
    "rta-local-raw-archive",
    "us-east-1",
    "123456789012",
    "arn:aws:kinesis:us-east-1:123456789012:stream/rta-local-events-raw",
)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return local_lake(tmp_path)


def avro_purchase_with_a_newline() -> bytes:
    event = dict(EXAMPLES["purchase.v2"], event_time=T - 5000)
    event["payload"] = dict(event["payload"], items=5)  # Avro long 5 is the byte 0x0A
    data = encode_avro(event, WireFormat.AVRO_GLUE)
    assert data.count(b"\n") == 1
    return data


def json_event(name: str, event_id: str) -> bytes:
    return json.dumps(dict(EXAMPLES[name], event_id=event_id, event_time=T - 1000)).encode()


def test_firehose_transform_gives_one_raw_line_per_documented_record() -> None:
    event = json.loads((FIXTURES / "firehose/kinesis_source_event.json").read_text())
    response = firehose_transform(event)
    records = event["records"]
    assert [(r["recordId"], r["result"]) for r in response["records"]] == [
        (r["recordId"], "Ok") for r in records
    ]
    lines = [base64.b64decode(r["data"]) for r in response["records"]]
    sequence = "49660358143744123456789012345678901234567890123456789026"
    assert lines == [
        b'{"data":"%s","arrival_ms":1764150005120,"partition_key":"s-1","shard_id":"shardId-000000000000",'
        b'"sequence_number":"49660358143744123456789012345678901234567890123456789010"}\n'
        % records[0]["data"].encode(),
        b'{"data":"%s","arrival_ms":1764150006450,"partition_key":"s-2","shard_id":"shardId-000000000001",'
        b'"sequence_number":"%s"}\n' % (records[1]["data"].encode(), sequence.encode()),
        b'{"data":"bm90IGFuIGV2ZW50","arrival_ms":1764150006450,"partition_key":"s-3",'
        b'"shard_id":"shardId-000000000001","sequence_number":"%s"}\n' % sequence.encode(),
    ]
    # What Firehose writes (the lines, concatenated, GZIP'd) reads back as the exact records.
    key = "raw/year=2025/month=11/day=26/hour=09/rta-dev-raw-archive-1-2025-11-26-09-40-06-f00d.gz"
    back = read_raw_object(key, gzip.compress(b"".join(lines)))
    assert back == [
        RawRecord(
            base64.b64decode(r["data"]),
            r["kinesisRecordMetadata"]["approximateArrivalTimestamp"],
            r["kinesisRecordMetadata"]["partitionKey"],
            r["kinesisRecordMetadata"]["shardId"],
            r["kinesisRecordMetadata"]["sequenceNumber"],
            f"{key}:{n}",
        )
        for n, r in enumerate(records, 1)
    ]
    assert back[1].data.count(b"\n") == 1  # the binary Avro record, whole


def test_firehose_transform_falls_back_to_firehose_arrival_without_kinesis_metadata() -> None:
    event = {"records": [{"recordId": "r1", "approximateArrivalTimestamp": 1764150005123, "data": "AAo="}]}
    [record] = firehose_transform(event)["records"]
    assert (record["recordId"], record["result"]) == ("r1", "Ok")
    assert base64.b64decode(record["data"]) == (
        b'{"data":"AAo=","arrival_ms":1764150005123,"partition_key":"","shard_id":"","sequence_number":""}\n'
    )


def _lambda_event(records: list[tuple[str, bytes, float]], shard: str) -> dict[str, Any]:
    stream_records = [
        StreamRecord(f"4966035814374412345678901234567890123456789012345678{i:04d}", key, data, arrival)
        for i, (key, data, arrival) in enumerate(records)
    ]
    return lambda_event(stream_records, shard, IDENTITY)


def test_binary_avro_and_a_kpl_aggregate_survive_the_archive_byte_identical(lake: Lake) -> None:
    avro = avro_purchase_with_a_newline()
    [kpl] = aggregate(
        [("s-7", json_event("click.v1", "0b8f5c2e-9d4a-4b1e-8c3f-1a2b3c4d5e71")), ("s-8", avro)]
    )
    assert len(kpl.user_indices) == 2 and kpl.data.count(b"\n") >= 1
    event = _lambda_event(
        [("s-9", avro, T / 1000 + 1.25), (kpl.partition_key, kpl.data, T / 1000 + 2.5)],
        "shardId-000000000003",
    )
    archived = kinesis_records(event)
    assert archived == [
        KinesisRecord(
            avro,
            T + 1250,
            "s-9",
            "shardId-000000000003",
            "49660358143744123456789012345678901234567890123456780000",
        ),
        KinesisRecord(
            kpl.data,
            T + 2500,
            "s-7",
            "shardId-000000000003",
            "49660358143744123456789012345678901234567890123456780001",
        ),
    ]
    key = put_raw(lake, ARCHIVE, archived)
    assert key == (
        "raw/year=2025/month=11/day=26/hour=10/rta-local-raw-archive-1-2025-11-26-10-00-01-shardId-000000000003."
        "49660358143744123456789012345678901234567890123456780000-49660358143744123456789012345678901234567890123456780001.gz"
    )
    assert put_raw(lake, ARCHIVE, archived) == key  # a retried batch overwrites its object
    assert raw_keys(lake, T, T + 3_600_000) == [key]
    back = read_raw_object(key, lake.get(key))
    assert [(r.data, r.arrival_ms, r.partition_key, r.shard_id, r.sequence_number) for r in back] == [
        tuple(r) for r in archived
    ]
    assert [r.origin for r in back] == [f"{key}:1", f"{key}:2"]

    report = ReplayReport(T, T + DAY)
    enriched = [json.loads(line) for line in enrich_records(back, report)]
    assert report.bad_rows == {}
    assert [(e["event_type"], e["enrichment"]["arrival_time"]) for e in enriched] == [
        ("purchase", T + 1250),
        ("click", T + 2500),  # the aggregate, unpacked: both user records
        ("purchase", T + 2500),
    ]


def test_a_line_that_is_no_record_becomes_a_counted_bad_row(lake: Lake) -> None:
    good = KinesisRecord(
        json_event("page_view.v1", "0b8f5c2e-9d4a-4b1e-8c3f-1a2b3c4d5e81"), T + 10, "k", "shardId-0", "1"
    )
    key = put_raw(lake, ARCHIVE, [good])
    body = gzip.decompress(lake.get(key))
    garbage = [
        b"garbage \xff\x00",
        body[:40],  # a torn line: not JSON
        b'{"data":"@@not base64@@","arrival_ms":1,"partition_key":"k","shard_id":"s","sequence_number":"2"}',
        b'{"data":"aGk=","arrival_ms":"soon","partition_key":"k","shard_id":"s","sequence_number":"3"}',
        b"[1, 2]",
    ]
    lake.put(key, gzip.compress(body + b"\n".join(garbage) + b"\n\n"))
    records = read_raw_object(key, lake.get(key))
    name_time = T  # the object's name time (its oldest arrival, to the second)
    assert records == [
        RawRecord(good.data, T + 10, "k", "shardId-0", "1", f"{key}:1"),
        *(RawRecord(line, name_time, "", "", "", f"{key}:{n}") for n, line in enumerate(garbage, 2)),
    ]
    report = ReplayReport(T, T + DAY)
    assert len(enrich_records(records, report)) == 1
    assert report.bad_rows == {"unparseable": 2, "schema_violation": 3}  # every garbage line, counted


def test_a_raw_object_that_is_not_gzip_readable_names_its_key() -> None:
    with pytest.raises(ValueError, match=r"^raw/x\.gz: not a readable GZIP object"):
        read_raw_object("raw/x.gz", b"\x1f\x8b\x08\x00truncated")
