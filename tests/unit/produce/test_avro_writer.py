import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from pipeline.contract import WireFormat, contract, encode
from pipeline.produce.avro_writer import _varint, compile_schema, wire_prefix
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
            assert _varint(n) == plain(n), n
