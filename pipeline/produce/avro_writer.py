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
from typing import Any, Protocol

from pipeline.contract import WireFormat
from pipeline.contract.codec import GLUE_COMPRESSION_NONE, GLUE_HEADER_VERSION, SINGLE_OBJECT_MAGIC
from pipeline.contract.schemas import SchemaVersion
from pipeline.produce.varint import (
    HIGH_PARTS,
    LOW_BITS,
    TABLE_BITS,
    TABLE_SIZE,
    VARINTS,
    ZIGZAG_LOW_BITS,
    ZIGZAG_VARINTS,
    varint,
)


class Encoder(Protocol):
    def __call__(self, datum: Any, header: bytes = b"") -> bytes:
        """`header` followed by the Avro body of `datum`."""


_FLOAT = struct.Struct("<f").pack
_DOUBLE = struct.Struct("<d").pack
_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")


def _long(value: int) -> bytes:
    return varint((value << 1) ^ (value >> 63))


def compile_schema(schema: Any) -> Encoder:
    """An encoder of datums of `schema` (a JSON-ready schema dict, not fastavro's parsed form):
    `encode(datum, header=b"")` is `header` followed by the datum's Avro body.

    The schema becomes the source of one Python function returning `b"".join((...))` of one tuple of
    byte pieces (as fastjsonschema does for validators): no per-field calls or type dispatch at run
    time, which is where the time goes.
    """
    namespace: dict[str, Any] = {
        "_P": _LENGTH_PREFIX,
        "_V": VARINTS,
        "_L": LOW_BITS,
        "_H": HIGH_PARTS,
        "_HG": HIGH_PARTS.get,
        "_HM": HIGH_PARTS.__missing__,
        "_ZL": ZIGZAG_LOW_BITS,
        "_ZV": ZIGZAG_VARINTS,
        "_varint": varint,
        "_F": _FLOAT,
        "_D": _DOUBLE,
    }
    counter = [0]
    pieces = _pieces(schema, "d", namespace, counter)
    # The header (the wire format's prefix) goes in the same join: one copy of the body less.
    source = f"def encode(d, header=b''):\n    return b''.join((header, {pieces}))"
    exec(compile(source, f"<avro encoder {schema.get('name', '?')}>", "exec"), namespace)
    encoder: Encoder = namespace["encode"]
    return encoder


_LENGTH_PREFIX = [varint(n << 1) for n in range(4096)]  # Avro length prefix of strings up to 4 KiB
_CACHED_STRINGS = 1 << 14  # distinct values remembered per string field


class _EncodedStrings(dict[str | None, bytes]):
    """One string field's values -> their Avro encoding (union tag, length prefix, UTF-8).

    Most string fields of an event repeat (event type, source, user agent, ip, session, page url and
    title, device, metric, ...): one dict lookup replaces encode + len + prefix, and one piece replaces
    two or three in the join. Bounded: a field of unique values (an order id, a log message) clears its
    cache when it fills up, instead of growing with the run. A nullable field caches None too.
    One cache per field name and union shape, shared by every schema (see `_field_cache`): a session
    id first seen in a page view is already encoded for the session's click.
    """

    __slots__ = ("null", "tag")

    def __init__(self, tag: bytes = b"", null: bytes | None = None) -> None:
        super().__init__()
        self.tag, self.null = tag, null  # tag: the union branch before a string; null: the encoded None
        if null is not None:
            self[None] = null

    def __missing__(self, value: str) -> bytes:
        if len(self) >= _CACHED_STRINGS:
            self.clear()
            if self.null is not None:
                self[None] = self.null
        data = value.encode()
        n = len(data)
        encoded = self.tag + (_LENGTH_PREFIX[n] if n < 4096 else varint(n << 1)) + data
        self[value] = encoded
        return encoded


def _is_plain_string(schema: Any) -> bool:
    """A string without a logical type (uuids are unique per event: caching them would only cost)."""
    return schema == "string" or (
        isinstance(schema, dict) and schema.get("type") == "string" and "logicalType" not in schema
    )


_FIELD_CACHES: dict[tuple[str, bytes, bytes | None], _EncodedStrings] = {}


def _field_cache(field: str, tag: bytes = b"", null: bytes | None = None) -> _EncodedStrings:
    """The process-wide cache of the string field `field` (with this union tag and null encoding)."""
    key = (field, tag, null)
    if key not in _FIELD_CACHES:
        _FIELD_CACHES[key] = _EncodedStrings(tag, null)
    return _FIELD_CACHES[key]


def _pieces(schema: Any, expr: str, ns: dict[str, Any], counter: list[int], field: str = "") -> str:
    """A comma-separated list of expressions, each evaluating to bytes, encoding `expr` as `schema`
    (the value of the record field named `field`, if it is one)."""
    counter[0] += 1
    var = f"v{counter[0]}"  # walrus targets: unique names across the whole function
    if isinstance(schema, dict) and schema.get("logicalType") == "uuid" and schema["type"] == "string":
        return _string_pieces(f"{expr}.encode()", var, counter)  # unique per event: not cached
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        return _int_pieces(expr, var, counter[0], large_first=True)  # epoch millis: as their base type
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise NotImplementedError(f"only [null, T] unions are compiled, not {schema!r}")
        null_index = schema.index("null")
        tag_null, tag_other = _long(null_index), _long(1 - null_index)
        if _is_plain_string(schema[1 - null_index]):
            return _cached_strings(expr, var, ns, _field_cache(field, tag_other, tag_null))
        other = _pieces(schema[1 - null_index], var, ns, counter)
        # One piece either way: a `*(...)` in the tuple would make Python build the whole tuple as a
        # list first, which cost more than all the rest of the encoder.
        return f"({tag_null!r} if ({var} := {expr}) is None else b''.join(({tag_other!r}, {other})))"
    if schema == "string":
        return _cached_strings(expr, var, ns, _field_cache(field))
    if schema == "bytes":
        return _string_pieces(expr, var, counter)
    if schema in ("int", "long"):
        return _int_pieces(expr, var, counter[0], large_first=False)
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
        parts = [_pieces(first["type"], f"({var} := {expr})[{first['name']!r}]", ns, counter, first["name"])]
        parts += [
            _pieces(f["type"], f"{var}[{f['name']!r}]", ns, counter, f["name"]) for f in schema["fields"][1:]
        ]
        return ", ".join(parts)
    if isinstance(schema, dict) and schema["type"] == "enum":
        table = f"_E{len(ns)}"
        ns[table] = {symbol: _long(i) for i, symbol in enumerate(schema["symbols"])}
        return f"{table}[{expr}]"
    if isinstance(schema, dict) and schema["type"] in _PRIMITIVES and "logicalType" not in schema:
        return _pieces(schema["type"], expr, ns, counter, field)
    raise NotImplementedError(f"no compiled encoder for {schema!r}")


def _int_pieces(expr: str, var: str, n: int, large_first: bool) -> str:
    """An int or long: zigzag, then `varint`, inlined: no call per number."""
    z = f"z{n}"
    # Small non-negative numbers (versions, counts, prices, coordinates): zigzag 2n, one table lookup.
    small = f"_ZV[{var}]"
    # Large non-negative numbers (epoch millis): their zigzag is 2n, so the varint's low bytes come from
    # n's low bits and its high part is n >> (TABLE_BITS - 1): two operations on the big int, not five.
    # (`_HG`/`_HM`: HIGH_PARTS' bound `get` and `__missing__`, as for strings in `_cached_strings`.)
    large = f"_ZL[{var} & {TABLE_SIZE // 2 - 1}] + (_HG({z} := {var} >> {TABLE_BITS - 1}) or _HM({z}))"
    zigzag = f"({z} := ({var} << 1) ^ ({var} >> 63))"
    general = f"_V[{z}] if {zigzag} < {TABLE_SIZE} else _L[{z} & {TABLE_SIZE - 1}] + _H[{z} >> {TABLE_BITS}]"
    if large_first:  # timestamps: one comparison for the usual case
        return (
            f"({large} if ({var} := {expr}) >= {TABLE_SIZE // 2} else {small} if {var} >= 0 else {general})"
        )
    return (
        f"({small} if 0 <= ({var} := {expr}) < {TABLE_SIZE // 2} else {large} if {var} >= 0 else {general})"
    )


def _string_pieces(value: str, var: str, counter: list[int]) -> str:
    """Length prefix and bytes of `value` (an expression evaluating to bytes)."""
    n = f"n{counter[0]}"
    return f"(_P[{n}] if ({n} := len({var} := {value})) < 4096 else _varint({n} << 1)), {var}"


def _cached_strings(expr: str, var: str, ns: dict[str, Any], cache: _EncodedStrings) -> str:
    # `cache.get(value) or cache.__missing__(value)`, both bound once, rather than `cache[value]`:
    # Python 3.11 subscripts a dict subclass through a generic slot that looks `__getitem__` up by
    # name, 0.03 us a field more than calling the bound `get`. An encoding is never empty (b"" is
    # false): a string has its length, a null its union branch.
    name = f"_C{len(ns)}"
    ns[name], ns[f"{name}m"] = cache.get, cache.__missing__
    return f"({name}({var} := {expr}) or {name}m({var}))"


def wire_prefix(sv: SchemaVersion, wire_format: WireFormat) -> bytes:
    """The header the codec puts before an Avro body (uncompressed Glue, or single-object)."""
    if wire_format is WireFormat.AVRO_GLUE:
        return bytes([GLUE_HEADER_VERSION, GLUE_COMPRESSION_NONE]) + sv.local_uuid.bytes
    if wire_format is WireFormat.AVRO_SINGLE_OBJECT:
        return SINGLE_OBJECT_MAGIC + sv.fingerprint
    raise ValueError(f"not an Avro wire format: {wire_format}")
