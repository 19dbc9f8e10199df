import base64
import copy
import hashlib
import hmac
import json
from types import ModuleType
from typing import Any

import orjson
import pytest
from aws_kinesis_agg import messages_pb2
from aws_kinesis_agg.aggregator import RecordAggregator
from fastavro.validation import validate

from pipeline.contract import contract
from pipeline.enrich.enrichment import ENRICHER_VERSION
from pipeline.enrich.pseudonym_key import DEV_PSEUDONYM_KEY

ARRIVAL_MS = 1764150010123
SOURCE_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/rta-local-events-raw"


def pseudonym(value: str) -> str:
    return hmac.new(DEV_PSEUDONYM_KEY, value.encode(), hashlib.sha256).hexdigest()


def run(
    handler_module: ModuleType, kit: Any, event: dict[str, Any], kinesis: Any, sqs: Any
) -> dict[str, Any]:
    handler_module.enricher = lambda: kit.make_enricher(kinesis, sqs)  # type: ignore[attr-defined]
    return dict(handler_module.handler(event, kit.Context()))


def emf(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    blobs = [line for line in lines if "_aws" in line]
    assert len(blobs) == 1
    return {k: v[0] if isinstance(v, list) else v for k, v in blobs[0].items()}


def test_good_batch_every_version_and_format_is_enriched(
    handler_module: ModuleType, kit: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = kit.kinesis_event("good_batch")
    kinesis, sqs = kit.FakeKinesis(), kit.FakeSqs()

    response = run(handler_module, kit, event, kinesis, sqs)

    assert response == {"batchItemFailures": []}
    assert sqs.messages == []
    put = kit.user_records(kinesis.accepted)
    assert len(put) == 15  # 10 JSON + 2 Avro + one KPL aggregate of 3
    enriched_events = [json.loads(data) for _, data in put]
    events = {e["event_id"]: e for e in enriched_events}
    assert len(events) == 13  # purchase.v1 and sensor_reading.v1 come twice: JSON and Avro
    assert all(key == json.loads(data)["event_id"] for key, data in put)  # partition key = event_id
    for enriched in enriched_events:
        schema = contract().enriched_schema(enriched["event_type"])
        assert validate(enriched, schema, raise_errors=True)
        assert enriched["schema_version"] == contract().latest(enriched["event_type"]).version
        assert enriched["enrichment"]["arrival_time"] == ARRIVAL_MS
        assert enriched["enrichment"]["event_time_skew_ms"] == ARRIVAL_MS - enriched["event_time"]
        assert enriched["enrichment"]["enricher_version"] == ENRICHER_VERSION

    page_view = events["0b8f5c2e-9d4a-4b1e-8c3f-1a2b3c4d5e01"]
    assert page_view["user_id"] == pseudonym("u-1")
    assert page_view["ip"] == pseudonym("81.2.69.142")
    assert page_view["enrichment"] | {"arrival_time": 0, "event_time_skew_ms": 0} == {
        "arrival_time": 0,
        "event_time_skew_ms": 0,
        "writer_version": 1,
        "ua_family": "Chrome",
        "ua_major": "120",
        "os_family": "Linux",
        "device_family": None,  # ua-parser 1.0: no device match on a desktop browser
        "is_bot": False,
        "country": "GB",
        "asn": None,
        "as_name": "Andrews & Arnold Ltd",
        "enricher_version": ENRICHER_VERSION,
    }
    assert page_view["payload"]["load_time_ms"] is None  # upcast v1 -> v2

    bot = events["0b8f5c2e-9d4a-4b1e-8c3f-1a2b3c4d5ea0"]  # inside the KPL aggregate, IPv6
    assert bot["enrichment"]["is_bot"] is True
    assert bot["enrichment"]["device_family"] == "Spider"
    assert (bot["enrichment"]["country"], bot["enrichment"]["as_name"]) == ("US", "GOOGLE")

    purchase_avro = [
        e for e in enriched_events if e["event_type"] == "purchase" and e["enrichment"]["writer_version"] == 1
    ]
    assert len(purchase_avro) == 2  # JSON and Glue-Avro copies of purchase.v1
    assert all(e["payload"]["item_count"] == 2 for e in purchase_avro)

    metrics = emf(capsys)
    assert (metrics["KinesisRecordsIn"], metrics["EventsIn"], metrics["DeaggregatedRecords"]) == (13, 15, 3)
    assert (metrics["Enriched"], metrics["BadRows"], metrics["UndeliveredEvents"]) == (15, 0, 0)


EXPECTED_BAD = [
    ("k-unparseable", "unparseable", None),
    ("k-unknown-type", "unknown_event_type", None),
    ("k-unknown-version", "unknown_schema_version", None),
    ("k-schema", "schema_violation", "payload.amount_minor"),
    ("k-range", "timestamp_out_of_range", "event_time"),
    ("k-future", "future_event_time", "event_time"),
]


def test_every_bad_row_reason_lands_in_the_dlq_with_its_origin(
    handler_module: ModuleType, kit: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = kit.kinesis_event("bad_rows")
    oversize = copy.deepcopy(event["Records"][0])
    big = b'{"event_type": "click", "pad": "' + b"x" * 1_048_600 + b'"}'
    oversize["kinesis"] |= {"partitionKey": "k-oversize", "sequenceNumber": "1", "data": kit.b64(big)}
    oversize["eventID"] = "shardId-000000000000:1"
    event["Records"].append(oversize)
    kinesis, sqs = kit.FakeKinesis(), kit.FakeSqs()

    response = run(handler_module, kit, event, kinesis, sqs)

    assert response == {"batchItemFailures": []}  # all bad, all in the DLQ: nothing to retry
    assert kinesis.accepted == []
    rows = {row["partition_key"]: row for row in sqs.rows()}
    assert len(rows) == 7
    originals = {r["kinesis"]["partitionKey"]: r for r in event["Records"]}
    for key, reason, field in [*EXPECTED_BAD, ("k-oversize", "oversize", None)]:
        row, record = rows[key], originals[key]
        data = base64.b64decode(record["kinesis"]["data"])
        assert (row["reason"], row["field"]) == (reason, field)
        assert row["detail"]
        assert row["stream"] == "rta-local-events-raw"
        assert row["shard_id"] == "shardId-000000000000"
        assert row["sequence_number"] == record["kinesis"]["sequenceNumber"]
        assert row["subsequence_number"] is None
        assert row["arrival_time"] == ARRIVAL_MS
        assert row["enricher_version"] == ENRICHER_VERSION
        assert row["payload_sha256"] == hashlib.sha256(data).hexdigest()
        assert row["payload_bytes"] == len(data)
        if key == "k-oversize":
            assert row["payload_truncated"] is True
            assert data.startswith(base64.b64decode(row["payload_base64"]))
            assert 200_000 < len(row["payload_base64"]) < 262_144
        else:
            assert row["payload_truncated"] is False
            assert base64.b64decode(row["payload_base64"]) == data
    assert {m["MessageAttributes"]["reason"]["StringValue"] for m in sqs.messages} == {
        r for _, r, _ in EXPECTED_BAD
    } | {"oversize"}
    metrics = emf(capsys)
    assert metrics["BadRows"] == 7 and metrics["Enriched"] == 0
    assert metrics["BadRows_schema_violation"] == 1


def test_a_bad_row_between_good_events_fails_nothing(handler_module: ModuleType, kit: Any) -> None:
    event = kit.kinesis_event("mixed")
    kinesis, sqs = kit.FakeKinesis(), kit.FakeSqs()
    assert run(handler_module, kit, event, kinesis, sqs) == {"batchItemFailures": []}
    assert len(kit.user_records(kinesis.accepted)) == 2
    assert [row["reason"] for row in sqs.rows()] == ["unparseable"]


def _aggregate(records: list[tuple[str, bytes]]) -> bytes:
    agg = RecordAggregator()
    for key, data in records:
        agg.add_user_record(key, data)
    _, _, data = agg.clear_and_get().get_contents()
    return bytes(data)


def test_bad_user_record_inside_an_aggregate_keeps_its_subsequence_number(
    handler_module: ModuleType, kit: Any
) -> None:
    event = kit.kinesis_event("mixed")
    good = base64.b64decode(event["Records"][0]["kinesis"]["data"])
    record = copy.deepcopy(event["Records"][0])
    record["kinesis"]["data"] = kit.b64(_aggregate([("a", good), ("b", b"garbage"), ("c", good)]))
    kinesis, sqs = kit.FakeKinesis(), kit.FakeSqs()

    assert run(handler_module, kit, {"Records": [record]}, kinesis, sqs) == {"batchItemFailures": []}

    assert len(kit.user_records(kinesis.accepted)) == 2
    [row] = sqs.rows()
    assert (row["reason"], row["subsequence_number"], row["partition_key"]) == ("unparseable", 1, "b")
    assert base64.b64decode(row["payload_base64"]) == b"garbage"


def test_corrupt_aggregate_is_one_unparseable_bad_row(handler_module: ModuleType, kit: Any) -> None:
    from aws_kinesis_agg import DIGEST_SIZE, MAGIC  # noqa: F401

    message = messages_pb2.AggregatedRecord()
    message.partition_key_table.append("a")
    entry = message.records.add()
    entry.partition_key_index = 7  # no such key: aws-kinesis-agg would drop the record silently
    entry.data = b"{}"
    body = message.SerializeToString()
    data = MAGIC + body + hashlib.md5(body).digest()
    record = copy.deepcopy(kit.kinesis_event("mixed")["Records"][0])
    record["kinesis"]["data"] = kit.b64(data)
    kinesis, sqs = kit.FakeKinesis(), kit.FakeSqs()

    assert run(handler_module, kit, {"Records": [record]}, kinesis, sqs) == {"batchItemFailures": []}

    [row] = sqs.rows()
    assert row["reason"] == "unparseable" and row["detail"].startswith("KPL aggregate:")
    assert base64.b64decode(row["payload_base64"]) == data


def test_throttled_downstream_is_retried_then_succeeds(handler_module: ModuleType, kit: Any) -> None:
    kinesis = kit.FakeKinesis(throttle=lambda call, entry: call <= 2)
    sqs = kit.FakeSqs()
    assert run(handler_module, kit, kit.kinesis_event("good_batch"), kinesis, sqs) == {
        "batchItemFailures": []
    }
    assert kinesis.calls == 3
    assert len(kit.user_records(kinesis.accepted)) == 15


def test_downstream_that_stays_throttled_reports_exactly_the_records_with_good_events(
    handler_module: ModuleType, kit: Any
) -> None:
    event = kit.kinesis_event("mixed")  # good, bad, good
    kinesis = kit.FakeKinesis(throttle=lambda call, entry: True)
    sqs = kit.FakeSqs()

    response = run(handler_module, kit, event, kinesis, sqs)

    sequence = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert response == {
        "batchItemFailures": [{"itemIdentifier": sequence[0]}, {"itemIdentifier": sequence[2]}]
    }
    assert kinesis.calls == 3  # max_attempts
    assert [row["reason"] for row in sqs.rows()] == ["unparseable"]  # the bad row was delivered


def test_throttled_downstream_only_fails_the_inputs_of_the_throttled_entries(
    handler_module: ModuleType, kit: Any
) -> None:
    event = kit.kinesis_event("good_batch")
    victim = event["Records"][4]
    victim_id = json.loads(base64.b64decode(victim["kinesis"]["data"]))["event_id"]
    kinesis = kit.FakeKinesis(throttle=lambda call, entry: victim_id.encode() in entry["Data"])
    enricher = kit.make_enricher(kinesis, kit.FakeSqs())
    enricher.writer.aggregate = False  # one entry per event: the victim alone stays throttled
    handler_module.enricher = lambda: enricher  # type: ignore[attr-defined]

    response = handler_module.handler(event, kit.Context())

    assert response == {"batchItemFailures": [{"itemIdentifier": victim["kinesis"]["sequenceNumber"]}]}
    assert len(kinesis.accepted) == 14


def test_dlq_that_keeps_failing_reports_the_bad_record(handler_module: ModuleType, kit: Any) -> None:
    event = kit.kinesis_event("mixed")
    sqs = kit.FakeSqs(fail=lambda entry: True)
    response = run(handler_module, kit, event, kit.FakeKinesis(), sqs)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][1]["kinesis"]["sequenceNumber"]}]
    }
    assert len(sqs.calls) == 3


def test_unexpected_error_fails_only_its_record_and_stages_nothing_of_it(
    handler_module: ModuleType, kit: Any
) -> None:
    from pipeline.contract import decode

    event = kit.kinesis_event("mixed")
    poison = base64.b64decode(event["Records"][2]["kinesis"]["data"])

    def flaky_decode(data: bytes) -> Any:
        if data == poison:
            raise RuntimeError("bug")
        return decode(data)

    kinesis, sqs = kit.FakeKinesis(), kit.FakeSqs()
    enricher = kit.make_enricher(kinesis, sqs)
    real_new_batch = enricher.new_batch

    def new_batch() -> Any:
        batch = real_new_batch()
        batch._decode = flaky_decode
        return batch

    enricher.new_batch = new_batch
    handler_module.enricher = lambda: enricher  # type: ignore[attr-defined]
    response = handler_module.handler(event, kit.Context())
    assert response == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][2]["kinesis"]["sequenceNumber"]}]
    }
    assert [orjson.loads(d)["event_id"] for _, d in kit.user_records(kinesis.accepted)] == [
        orjson.loads(base64.b64decode(event["Records"][0]["kinesis"]["data"]))["event_id"]
    ]


def test_every_record_failing_is_reported_not_raised(handler_module: ModuleType, kit: Any) -> None:
    event = kit.kinesis_event("good_batch")
    response = run(
        handler_module, kit, event, kit.FakeKinesis(throttle=lambda call, entry: True), kit.FakeSqs()
    )
    assert response == {
        "batchItemFailures": [{"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in event["Records"]]
    }


def test_event_source_arn_names_the_stream_in_bad_rows(handler_module: ModuleType, kit: Any) -> None:
    event = kit.kinesis_event("bad_rows")
    assert {r["eventSourceARN"] for r in event["Records"]} == {SOURCE_ARN}


def test_record_processor_hands_raw_records_and_reports_failures_the_powertools_way(kit: Any) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from pipeline.enrich.service import KinesisRecordProcessor

    records = kit.kinesis_event("mixed")["Records"]
    poison = records[1]["kinesis"]["sequenceNumber"]
    seen: list[Any] = []

    def record_handler(record: Any) -> None:
        seen.append(record)
        if record["kinesis"]["sequenceNumber"] == poison:
            raise RuntimeError("bug")

    processor = KinesisRecordProcessor(raise_on_entire_batch_failure=False)
    with processor(records=records, handler=record_handler):
        outcome = processor.process()
    assert seen == records and all(type(r) is dict for r in seen)
    assert [status for status, _, _ in outcome] == [
        "fail" if i == 1 else "success" for i in range(len(records))
    ]
    assert processor.response() == {"batchItemFailures": [{"itemIdentifier": poison}]}

    strict = KinesisRecordProcessor()
    with pytest.raises(BatchProcessingError), strict(records=records[1:2], handler=record_handler):
        strict.process()


@pytest.mark.parametrize(
    "text",
    ["", "QUJD", "QUJDRA==", "QUJDRA=", "QUJDRA", "QR==", "QQ==QUJD", "QUI=Q", "QU JD\n", "!!!!", "é"],
)
def test_record_data_decodes_exactly_as_the_stdlib_does(text: str) -> None:
    import binascii

    from pipeline.enrich.batch import _b64decode

    def outcome(decoder: Any) -> Any:
        try:
            return decoder(text)
        except ValueError as exc:
            return type(exc), str(exc)

    assert outcome(_b64decode) == outcome(binascii.a2b_base64)
