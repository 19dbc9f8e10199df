import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from pipeline.contract import BadRowReason, DecodeError, WireFormat, contract, decode, encode
from pipeline.contract.avro_reader import Unreadable, compile_reader
from pipeline.contract.codec import _raw_definition
from pipeline.produce.workload import RecordKind, Workload, WorkloadConfig

EXAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "events" / "examples.json").read_text()
)
SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [
        {"name": "n", "type": "long"},
        {"name": "s", "type": "string"},
        {"name": "o", "type": ["null", "string"]},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "r", "type": {"type": "record", "name": "R", "fields": [{"name": "i", "type": "int"}]}},
    ],
}
DATUM = {"n": -(1 << 62), "s": "é" * 70, "o": "x", "e": "B", "f": 0.1, "d": -2.5, "b": True, "r": {"i": 300}}


def _fastavro(schema: Any, body: bytes) -> Any:
    stream = io.BytesIO(body)
    datum = schemaless_reader(stream, parse_schema(schema), None)
    assert stream.tell() == len(body)
    return datum


def _body(schema: Any, datum: Any) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(schema), datum)
    return buffer.getvalue()


def test_reads_what_fastavro_reads_for_every_type_compiled() -> None:
    body = _body(SCHEMA, DATUM)
    datum, end = compile_reader(SCHEMA)(body)
    assert end == len(body)
    assert datum == _fastavro(SCHEMA, body)
    assert datum["f"] == pytest.approx(0.1) and datum["f"] != 0.1  # a 32-bit float, as fastavro reads it
    null_body = _body(SCHEMA, {**DATUM, "o": None, "b": False, "s": ""})
    assert compile_reader(SCHEMA)(null_body)[0] == _fastavro(SCHEMA, null_body)


@pytest.mark.parametrize("version_id", sorted(EXAMPLES))
def test_every_shipped_version_reads_as_fastavro_does(version_id: str) -> None:
    event = EXAMPLES[version_id]
    sv = contract().version(event["event_type"], event["schema_version"])
    body = encode(event, WireFormat.AVRO_SINGLE_OBJECT)[10:]
    datum, end = compile_reader(_raw_definition(sv))(body)
    assert end == len(body)
    assert datum == _fastavro(_raw_definition(sv), body)


def test_every_generated_avro_body_reads_as_fastavro_does() -> None:
    c = contract()
    checked = 0
    for record in Workload(WorkloadConfig(events=4_000, seed=9, end_ms=1_764_150_000_000)):
        if record.kind is RecordKind.BAD or record.data[:1] == b"{":
            continue
        sv = c.by_fingerprint[record.data[2:10]] if record.data[0] == 0xC3 else decode(record.data).writer
        body = record.data[10:] if record.data[0] == 0xC3 else record.data[18:]
        schema = _raw_definition(sv)
        assert compile_reader(schema)(body) == (_fastavro(schema, body), len(body))
        checked += 1
    assert checked > 1_500


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", IndexError),  # truncated
        (b"\xff" * 10 + b"\x7f", Unreadable),  # a varint over 64 bits
        (b"\x02\x03", Unreadable),  # a negative string length
        (b"\x02\x20ab", Unreadable),  # a string longer than the body
        (b"\x02\x02a\x04", Unreadable),  # union branch 2 of [null, string]
        (b"\x02\x02a\x00\x04", Unreadable),  # enum symbol 2 of 2
        (b"\x02\x02\xff\x00", UnicodeDecodeError),  # not UTF-8
    ],
)
def test_gives_up_on_malformed_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        compile_reader(SCHEMA)(body)


def test_a_body_the_fast_path_gives_up_on_still_decodes_through_fastavro() -> None:
    # The branch index of the nullable user_id as a two-byte varint: valid Avro, never written.
    event = EXAMPLES["click.v1"]
    sv = contract().version("click", 1)
    body = encode(event, WireFormat.AVRO_SINGLE_OBJECT)[10:]
    envelope = _body({"type": "record", "name": "P", "fields": sv.definition["fields"][:5]}, event)
    branch = body[len(envelope)]
    assert branch in (0, 2)  # the user_id branch index, zig-zag
    odd = body[: len(envelope)] + bytes([branch | 0x80, 0]) + body[len(envelope) + 1 :]
    with pytest.raises(Unreadable):
        compile_reader(_raw_definition(sv))(odd)
    header = encode(event, WireFormat.AVRO_SINGLE_OBJECT)[:10]
    assert decode(header + odd).event == decode(header + body).event


def test_malformed_bodies_keep_fastavros_verdict() -> None:
    event = EXAMPLES["page_view.v2"]
    data = encode(event, WireFormat.AVRO_GLUE)
    with pytest.raises(DecodeError) as truncated:
        decode(data[:-3])
    assert truncated.value.reason is BadRowReason.UNPARSEABLE
    assert truncated.value.detail.startswith("Avro body does not match page_view.v2: EOFError")
    with pytest.raises(DecodeError) as trailing:
        decode(data + b"\x00\x00")
    assert trailing.value.detail == "2 trailing bytes after page_view.v2 body"


def test_unsupported_schemas_are_not_compiled() -> None:
    with pytest.raises(NotImplementedError):
        compile_reader({"type": "record", "name": "X", "fields": [{"name": "a", "type": "bytes"}]})
    with pytest.raises(NotImplementedError):
        compile_reader(
            {"type": "record", "name": "X", "fields": [{"name": "t", "type": ["null", "int", "string"]}]}
        )
    with pytest.raises(NotImplementedError):
        compile_reader({"type": "long", "logicalType": "timestamp-micros"})
