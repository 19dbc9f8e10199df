"""The compiled upcaster gives exactly what fastavro's own schema resolution gives, for every shipped pair."""

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from pipeline.contract import WireFormat, contract, decode, encode
from pipeline.contract.codec import _normalise, upcaster
from pipeline.contract.upcast import Unsupported, compile_upcaster

EXAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "events" / "examples.json").read_text()
)


def _variants(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The example, and the same with every nullable payload field null and odd numbers."""
    out = [event]
    nulled = copy.deepcopy(event)
    for key in ("user_id", "session_id", "user_agent", "ip"):
        nulled[key] = None
    out.append(nulled)
    if event["event_type"] == "sensor_reading":
        odd = copy.deepcopy(event)
        odd["payload"]["value"] = 0.1 + 0.2
        out.append(odd)
    return out


def _fastavro_resolution(event: dict[str, Any]) -> dict[str, Any]:
    c = contract()
    writer = c.version(event["event_type"], event["schema_version"])
    latest = c.latest(event["event_type"])
    buffer = io.BytesIO()
    schemaless_writer(buffer, writer.parsed, event)
    buffer.seek(0)
    resolved = schemaless_reader(buffer, writer.parsed, latest.parsed)
    assert isinstance(resolved, dict)
    _normalise(resolved)
    resolved["schema_version"] = latest.version
    return resolved


@pytest.mark.parametrize("version_id", sorted(EXAMPLES))
def test_every_shipped_pair_compiles(version_id: str) -> None:
    c = contract()
    event_type = version_id.split(".")[0]
    writer = c.version(event_type, int(version_id.split("v")[-1]))
    assert upcaster(writer, c.latest(event_type)) is not None


@pytest.mark.parametrize("wire_format", list(WireFormat))
@pytest.mark.parametrize("version_id", sorted(EXAMPLES))
def test_decode_equals_fastavro_resolution(version_id: str, wire_format: WireFormat) -> None:
    for event in _variants(EXAMPLES[version_id]):
        assert decode(encode(event, wire_format)).event == _fastavro_resolution(event)


def test_json_extra_keys_are_dropped_like_a_reader_would() -> None:
    event = copy.deepcopy(EXAMPLES["click.v1"]) | {"debug": True}
    assert decode(json.dumps(event).encode()).event == _fastavro_resolution(EXAMPLES["click.v1"])


@pytest.mark.parametrize(
    ("writer", "reader", "value", "expected"),
    [
        ("int", "long", 3, 3),
        ("int", "double", 3, 3.0),
        ("float", "double", 0.1, 0.10000000149011612),
        ("string", "bytes", "a", b"a"),
        (["null", "int"], ["null", "long"], None, None),
        ("string", ["null", "string"], "x", "x"),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "double"}, [1, 2], [1.0, 2.0]),
    ],
)
def test_promotions(writer: Any, reader: Any, value: Any, expected: Any) -> None:
    result = compile_upcaster(writer, reader)(value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("long", "int"),
        (["null", "string", "int"], ["null", "string", "int"]),
        (
            {"type": "record", "name": "R", "fields": []},
            {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]},
        ),
    ],
)
def test_what_it_cannot_compile_is_left_to_fastavro(writer: Any, reader: Any) -> None:
    with pytest.raises(Unsupported):
        compile_upcaster(writer, reader)


@pytest.mark.parametrize("wire_format", [WireFormat.AVRO_GLUE, WireFormat.AVRO_SINGLE_OBJECT])
def test_avro_event_id_is_canonical_or_refused(wire_format: WireFormat) -> None:
    from pipeline.contract import BadRowReason, DecodeError

    upper = copy.deepcopy(EXAMPLES["click.v1"]) | {"event_id": EXAMPLES["click.v1"]["event_id"].upper()}
    assert decode(encode(upper, wire_format)).event["event_id"] == EXAMPLES["click.v1"]["event_id"]
    malformed = copy.deepcopy(EXAMPLES["purchase.v1"]) | {"event_id": "not-a-uuid"}
    with pytest.raises(DecodeError) as caught:
        decode(encode(malformed, wire_format))
    assert caught.value.reason is BadRowReason.UNPARSEABLE
