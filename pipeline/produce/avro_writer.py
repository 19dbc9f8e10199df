"""Avro binary bodies from encoders compiled once per schema: the same bytes as fastavro's
`schemaless_writer` (the codec's), several times faster.

Why not just fastavro: the producer must generate and encode 100k events/s per core, and fastavro's
per-datum generic dispatch (union branch checks, logical-type hooks) costs 12-20 us per event here,
most of the budget. Only the types the contract uses are compiled (records, enums, null unions,
strings, numbers, booleans, uuid and timestamp-millis as their underlying types); any other schema
raises `NotImplementedError`, and the caller uses the codec. Byte equality with the codec is tested
over whole workloads (tests/unit/produce/test_avro_writer.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pipeline.contract import WireFormat
from pipeline.contract.codec import GLUE_COMPRESSION_NONE, GLUE_HEADER_VERSION, SINGLE_OBJECT_MAGIC
from pipeline.contract.schemas import SchemaVersion

Encoder = Callable[[Any], bytes]

_SMALL = [bytes([n]) for n in range(128)]
_FLOAT = struct.Struct("<f").pack
_DOUBLE = struct.Struct("<d").pack
_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")


def _varint(n: int) -> bytes:
    """Unsigned LEB128, unrolled for the common sizes (event times in millis take 6 bytes)."""
    if n < 0x80:
        return _SMALL[n]
    if n < 1 << 14:
        return bytes((n & 127 | 128, n >> 7))
    if n < 1 << 21:
        return bytes((n & 127 | 128, n >> 7 & 127 | 128, n >> 14))
    if n < 1 << 28:
        return bytes((n & 127 | 128, n >> 7 & 127 | 128, n >> 14 & 127 | 128, n >> 21))
    if n < 1 << 42:
        return bytes(
            (
                n & 127 | 128,
                n >> 7 & 127 | 128,
                n >> 14 & 127 | 128,
                n >> 21 & 127 | 128,
                n >> 28 & 127 | (128 if n >= 1 << 35 else 0),
                *((n >> 35,) if n >= 1 << 35 else ()),
            )
        )
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _long(value: int) -> bytes:
    return _varint((value << 1) ^ (value >> 63))


def compile_schema(schema: Any) -> Encoder:
    """An encoder of datums of `schema` (a JSON-ready schema dict, not fastavro's parsed form).

    The schema becomes the source of one Python function returning `b"".join((...))` of one tuple of
    byte pieces (as fastjsonschema does for validators): no per-field calls or type dispatch at run
    time, which is where the time goes.
    """
    namespace: dict[str, Any] = {"_P": _LENGTH_PREFIX, "_varint": _varint, "_F": _FLOAT, "_D": _DOUBLE}
    counter = [0]
    pieces = _pieces(schema, "d", namespace, counter)
    source = f"def encode(d):\n    return b''.join(({pieces},))"
    exec(compile(source, f"<avro encoder {schema.get('name', '?')}>", "exec"), namespace)
    encoder: Encoder = namespace["encode"]
    return encoder


_LENGTH_PREFIX = [_varint(n << 1) for n in range(4096)]  # Avro length prefix of strings up to 4 KiB


def _pieces(schema: Any, expr: str, ns: dict[str, Any], counter: list[int]) -> str:
    """A comma-separated list of expressions, each evaluating to bytes, encoding `expr` as `schema`."""
    counter[0] += 1
    var = f"v{counter[0]}"  # walrus targets: unique names across the whole function
    if isinstance(schema, dict) and schema.get("logicalType") in ("uuid", "timestamp-millis"):
        schema = schema["type"]  # a uuid string and epoch millis are written as their base type
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise NotImplementedError(f"only [null, T] unions are compiled, not {schema!r}")
        null_index = schema.index("null")
        other = _pieces(schema[1 - null_index], var, ns, counter)
        tag_null, tag_other = _long(null_index), _long(1 - null_index)
        return f"*(({tag_null!r},) if ({var} := {expr}) is None else ({tag_other!r}, {other}))"
    if schema in ("string", "bytes"):
        value = f"{expr}.encode()" if schema == "string" else expr
        n = f"n{counter[0]}"
        return f"(_P[{n}] if ({n} := len({var} := {value})) < 4096 else _varint({n} << 1)), {var}"
    if schema in ("int", "long"):
        return f"_varint((({var} := {expr}) << 1) ^ ({var} >> 63))"
    if schema == "float":
        return f"_F({expr})"
    if schema == "double":
        return f"_D({expr})"
    if schema == "boolean":
        return f"(b'\\x01' if {expr} else b'\\x00')"
    if schema == "null":
        return "b''"
    if isinstance(schema, dict) and schema["type"] == "record":
        first = schema["fields"][0]
        parts = [_pieces(first["type"], f"({var} := {expr})[{first['name']!r}]", ns, counter)]
        parts += [_pieces(f["type"], f"{var}[{f['name']!r}]", ns, counter) for f in schema["fields"][1:]]
        return ", ".join(parts)
    if isinstance(schema, dict) and schema["type"] == "enum":
        table = f"_E{len(ns)}"
        ns[table] = {symbol: _long(i) for i, symbol in enumerate(schema["symbols"])}
        return f"{table}[{expr}]"
    if isinstance(schema, dict) and schema["type"] in _PRIMITIVES and "logicalType" not in schema:
        return _pieces(schema["type"], expr, ns, counter)
    raise NotImplementedError(f"no compiled encoder for {schema!r}")


def wire_prefix(sv: SchemaVersion, wire_format: WireFormat) -> bytes:
    """The header the codec puts before an Avro body (uncompressed Glue, or single-object)."""
    if wire_format is WireFormat.AVRO_GLUE:
        return bytes([GLUE_HEADER_VERSION, GLUE_COMPRESSION_NONE]) + sv.local_uuid.bytes
    if wire_format is WireFormat.AVRO_SINGLE_OBJECT:
        return SINGLE_OBJECT_MAGIC + sv.fingerprint
    raise ValueError(f"not an Avro wire format: {wire_format}")
