import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from pipeline.contract import WireFormat, contract, encode
from pipeline.produce import avro_writer
from pipeline.produce.avro_writer import compile_schema, wire_prefix
from pipeline.produce.varint import varint
from pipeline.produce.workload import RecordKind, Workload, WorkloadConfig

EXAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "events" / "examples.json").read_text()
)
AVRO = [WireFormat.AVRO_GLUE, WireFormat.AVRO_SINGLE_OBJECT]


@pytest.mark.parametrize("wire_format", AVRO)
@pytest.mark.parametrize("version_id", sorted(EXAMPLES))
def test_compiled_bodies_equal_the_codec_bytes(version_id: str, wire_format: WireFormat) -> None:
    event = EXAMPLES[version_id]
    sv = contract().version(event["event_type"], event["schema_version"])
    assert wire_prefix(sv, wire_format) + compile_schema(sv.definition)(event) == encode(event, wire_format)


def test_every_generated_avro_record_equals_the_codec_bytes() -> None:
    checked = 0
    for record in Workload(WorkloadConfig(events=6_000, seed=4, end_ms=1_764_150_000_000)):
        if record.kind is RecordKind.BAD or record.event is None or record.data[:1] == b"{":
            continue
        wire_format = WireFormat.AVRO_GLUE if record.data[0] == 3 else WireFormat.AVRO_SINGLE_OBJECT
        assert record.data == encode(record.event, wire_format)
        checked += 1
    assert checked > 2_500


def test_every_generated_json_record_equals_the_codec_bytes() -> None:
    # The generator calls orjson directly instead of the codec's `encode_json`.
    checked = 0
    for record in Workload(WorkloadConfig(events=6_000, seed=4, end_ms=1_764_150_000_000)):
        if record.kind is RecordKind.BAD or record.event is None or record.data[:1] != b"{":
            continue
        assert record.data == encode(record.event, WireFormat.JSON)
        checked += 1
    assert checked > 2_500


def test_negative_and_large_numbers_and_unicode() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "long"},
            {"name": "b", "type": "int"},
            {"name": "s", "type": ["null", "string"]},
            {"name": "d", "type": "double"},
            {"name": "f", "type": "boolean"},
        ],
    }

    parsed = parse_schema(schema)
    for datum in [
        {"a": -1, "b": -(2**31), "s": "ü€😀", "d": -0.5, "f": True},
        {"a": 2**62, "b": 2**31 - 1, "s": None, "d": 1e300, "f": False},
        {"a": 0, "b": 63, "s": "x" * 200, "d": 0.1, "f": True},
    ]:
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, datum)
        assert compile_schema(schema)(datum) == buffer.getvalue()


def test_unsupported_schemas_are_refused() -> None:
    with pytest.raises(NotImplementedError):
        compile_schema({"type": "array", "items": "string"})
    with pytest.raises(NotImplementedError):
        compile_schema(["null", "string", "long"])


def test_varints_match_the_plain_loop_at_every_size() -> None:
    def plain(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out)

    rng = random.Random(0)
    for bits in range(64):
        for n in ((1 << bits) - 1, 1 << bits, (1 << bits) + 1, rng.getrandbits(bits + 1)):
            assert varint(n) == plain(n), n


def test_numbers_at_every_varint_boundary() -> None:
    schema = {
        "type": "record",
        "name": "N",
        "fields": [
            {"name": "n", "type": "long"},
            {"name": "m", "type": ["null", "long"]},
            # compiled with the large-number test first (epoch millis)
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
    parsed = parse_schema(schema)
    encode_n = compile_schema(schema)
    edges = [0, 1, 63, 64, 8191, 8192, 8193, 16383, 16384, 2**20, 2**35, 2**42, 1_764_150_000_000, 2**63 - 1]
    for n in [*edges, *(-e for e in edges), -(2**63)]:
        for m in (None, n):
            buffer = io.BytesIO()
            schemaless_writer(buffer, parsed, {"n": n, "m": m, "t": n})
            assert encode_n({"n": n, "m": m, "t": n}) == buffer.getvalue(), n


def test_the_header_goes_before_the_body() -> None:
    event = EXAMPLES[sorted(EXAMPLES)[0]]
    sv = contract().version(event["event_type"], event["schema_version"])
    encoder = compile_schema(sv.definition)
    assert encoder(event, b"header") == b"header" + encoder(event)


def test_string_caches_stay_bounded_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(avro_writer, "_CACHED_STRINGS", 8)
    schema = {
        "type": "record",
        "name": "S",
        "fields": [
            {"name": "bounded_s", "type": "string"},
            {"name": "bounded_t", "type": ["null", "string"]},
        ],
    }
    parsed = parse_schema(schema)
    encode_s = compile_schema(schema)
    for i in range(100):
        datum = {"bounded_s": f"value-{i % 30}-é", "bounded_t": None if i % 3 else f"t{i}" * 40}
        buffer = io.BytesIO()
        schemaless_writer(buffer, parsed, datum)
        assert encode_s(datum) == buffer.getvalue()
    caches = [c for (field, *_), c in avro_writer._FIELD_CACHES.items() if field.startswith("bounded_")]
    assert len(caches) == 2 and all(len(c) <= 8 for c in caches)
