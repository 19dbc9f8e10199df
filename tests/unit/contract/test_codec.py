import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.contract import BadRowReason, DecodeError, WireFormat, contract, decode, encode, encode_avro
from pipeline.contract.codec import check_event_time_skew

EXAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "events" / "examples.json").read_text()
)
ALL_FORMATS = list(WireFormat)


def test_every_shipped_version_has_an_example() -> None:
    shipped = {sv.id for chain in contract().versions.values() for sv in chain.values()}
    assert shipped == set(EXAMPLES)


@pytest.mark.parametrize("wire_format", ALL_FORMATS)
@pytest.mark.parametrize("version_id", sorted(EXAMPLES))
def test_every_version_round_trips_in_every_format(version_id: str, wire_format: WireFormat) -> None:
    event = EXAMPLES[version_id]
    decoded = decode(encode(event, wire_format))
    assert decoded.wire_format is wire_format
    assert decoded.writer.id == version_id
    latest = contract().latest(event["event_type"])
    assert decoded.event["schema_version"] == latest.version
    if event["schema_version"] == latest.version:
        expected = copy.deepcopy(event)
        if event["event_type"] == "sensor_reading" and wire_format is not WireFormat.JSON:
            assert decoded.event["payload"]["value"] == pytest.approx(expected["payload"].pop("value"))
            decoded.event["payload"].pop("value")
        assert decoded.event == expected


@pytest.mark.parametrize("wire_format", ALL_FORMATS)
def test_purchase_v1_upcasts_to_v3_with_rename_widening_and_default(wire_format: WireFormat) -> None:
    decoded = decode(encode(EXAMPLES["purchase.v1"], wire_format))
    assert decoded.writer.id == "purchase.v1"
    assert decoded.event["payload"] == {
        "order_id": "o-1",
        "amount_minor": 3998,
        "currency": "EUR",
        "item_count": 2,
        "coupon_code": None,
    }
    assert decoded.event["schema_version"] == 3
    assert decoded.event["event_time"] == 1764150004000
    assert decoded.event["event_id"] == "0b8f5c2e-9d4a-4b1e-8c3f-1a2b3c4d5e05"


@pytest.mark.parametrize("wire_format", ALL_FORMATS)
def test_old_page_view_and_sensor_reading_get_defaults(wire_format: WireFormat) -> None:
    page = decode(encode(EXAMPLES["page_view.v1"], wire_format)).event
    assert page["payload"] == {"url": "/home", "referrer": None, "title": "Home", "load_time_ms": None}
    sensor = decode(encode(EXAMPLES["sensor_reading.v1"], wire_format)).event
    assert sensor["payload"] == {"device_id": "dev-7", "metric": "temperature", "value": 21.5, "unit": None}


def test_glue_header_with_zlib_and_registry_assigned_id() -> None:
    c = contract()
    assigned = uuid.UUID("11111111-2222-3333-4444-555555555555")
    c.register_uuid(assigned, c.version("page_view", 2))
    data = encode_avro(
        EXAMPLES["page_view.v2"], WireFormat.AVRO_GLUE, schema_version_id=assigned, compress=True
    )
    assert data[:2] == b"\x03\x05" and data[2:18] == assigned.bytes
    assert decode(data).event["payload"]["load_time_ms"] == 812


def _violation(event: dict[str, Any]) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(json.dumps(event).encode())
    return caught.value


def _with(version_id: str, path: str, value: Any) -> dict[str, Any]:
    event = copy.deepcopy(EXAMPLES[version_id])
    *parents, leaf = path.split(".")
    node = event
    for p in parents:
        node = node[p]
    node[leaf] = value
    return event


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01garbage", BadRowReason.UNPARSEABLE),
        (b'{"event_type": "page_view", ', BadRowReason.UNPARSEABLE),
        (b"\x03\x00" + uuid.uuid4().bytes + b"\x02", BadRowReason.UNKNOWN_SCHEMA_VERSION),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", BadRowReason.UNKNOWN_SCHEMA_VERSION),
        (b"\x03\x07" + uuid.uuid4().bytes, BadRowReason.UNKNOWN_SCHEMA_VERSION),
        (json.dumps(_with("click.v1", "event_type", "scroll")).encode(), BadRowReason.UNKNOWN_EVENT_TYPE),
        (json.dumps(_with("click.v1", "schema_version", 9)).encode(), BadRowReason.UNKNOWN_SCHEMA_VERSION),
        (json.dumps(_with("click.v1", "payload.x", "left")).encode(), BadRowReason.SCHEMA_VIOLATION),
        (b"{" + b" " * (1_048_576 - 1) + b"}", BadRowReason.OVERSIZE),
        (json.dumps(_with("click.v1", "event_time", 12)).encode(), BadRowReason.TIMESTAMP_OUT_OF_RANGE),
        (
            json.dumps(_with("click.v1", "event_time", 4_200_000_000_000)).encode(),
            BadRowReason.TIMESTAMP_OUT_OF_RANGE,
        ),
    ],
    ids=[
        "binary-garbage",
        "truncated-json",
        "unregistered-glue-uuid",
        "unknown-fingerprint",
        "glue-unknown-compression-unregistered",
        "unknown-event-type",
        "unknown-version",
        "wrong-type",
        "oversize",
        "timestamp-1970",
        "timestamp-2103",
    ],
)
def test_each_bad_input_gives_its_reason(data: bytes, reason: BadRowReason) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(data)
    assert caught.value.reason is reason


def test_schema_violation_names_the_field_path() -> None:
    err = _violation(_with("click.v1", "payload.x", "left"))
    assert (err.reason, err.field) == (BadRowReason.SCHEMA_VIOLATION, "payload.x")
    missing = copy.deepcopy(EXAMPLES["purchase.v3"])
    del missing["payload"]["currency"]
    assert _violation(missing).field == "payload.currency"
    assert _violation(_with("page_view.v2", "user_id", 7)).field == "user_id"
    assert _violation(_with("app_log.v1", "payload.level", "LOUD")).field == "payload.level"
    assert _violation(_with("click.v1", "schema_version", "1")).field == "schema_version"


def test_json_that_is_not_an_object_is_a_schema_violation_at_the_root() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(b"[1, 2, 3]")
    assert (caught.value.reason, caught.value.field) == (BadRowReason.SCHEMA_VIOLATION, "$")


def test_corrupt_avro_body_is_unparseable_not_a_crash() -> None:
    good = encode(EXAMPLES["click.v1"], WireFormat.AVRO_SINGLE_OBJECT)
    for cut in (11, 20, len(good) - 1):
        with pytest.raises(DecodeError) as caught:
            decode(good[:cut])
        assert caught.value.reason is BadRowReason.UNPARSEABLE
    with pytest.raises(DecodeError) as trailing:
        decode(good + b"\x00")
    assert trailing.value.reason is BadRowReason.UNPARSEABLE


def test_avro_record_claiming_another_event_type_is_a_violation() -> None:
    event = _with("click.v1", "event_type", "page_view")
    with pytest.raises(DecodeError) as caught:
        decode(encode_avro({**event, "event_type": "click"}, WireFormat.AVRO_GLUE)[:18] + _avro_body(event))
    assert (caught.value.reason, caught.value.field) == (BadRowReason.SCHEMA_VIOLATION, "event_type")


def _avro_body(event: dict[str, Any]) -> bytes:
    import io

    from fastavro import schemaless_writer

    buffer = io.BytesIO()
    schemaless_writer(buffer, contract().version("click", 1).parsed, event)
    return buffer.getvalue()


def test_future_event_time_beyond_tolerance() -> None:
    check_event_time_skew(1_000_000 + 300_000, 1_000_000, tolerance_s=300)
    with pytest.raises(DecodeError) as caught:
        check_event_time_skew(1_000_000 + 300_001, 1_000_000, tolerance_s=300)
    assert caught.value.reason is BadRowReason.FUTURE_EVENT_TIME


@pytest.mark.parametrize("version_id", ["page_view.v1", "page_view.v2", "click.v1", "purchase.v1"])
def test_json_may_leave_out_nullable_fields_they_read_as_null(version_id: str) -> None:
    event = copy.deepcopy(EXAMPLES[version_id])
    for name in ("session_id", "user_agent", "ip"):
        del event[name]
    decoded = decode(json.dumps(event).encode()).event
    assert (decoded["session_id"], decoded["user_agent"], decoded["ip"]) == (None, None, None)
    assert decoded["event_id"] == event["event_id"]
