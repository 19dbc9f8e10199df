"""Encode and decode events: JSON or Avro (Glue Schema Registry header or single-object fingerprint).

Decoding always yields the newest reader version of the event's type (fastavro schema resolution), or
raises `DecodeError` with a bad-row reason. It never raises anything else on bad input.
"""

from __future__ import annotations

import copy
import io
import re
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple, cast

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from pipeline.contract.avro_reader import Decoder, compile_reader, reader_namespace, reader_statements
from pipeline.contract.errors import BadRowReason, DecodeError
from pipeline.contract.schemas import Contract, SchemaVersion, contract
from pipeline.contract.upcast import Unsupported, Upcaster, compile_upcaster
from pipeline.contract.validate import Check, NotCompiled, check_expression, check_namespace, compile_check

MAX_RECORD_BYTES = 1_048_576  # Kinesis data blob limit (1 MiB)
MIN_EVENT_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_EVENT_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z

GLUE_HEADER_VERSION = 3
GLUE_COMPRESSION_NONE = 0
GLUE_COMPRESSION_ZLIB = 5
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_GLUE_FIRST_BYTE = bytes([GLUE_HEADER_VERSION])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class WireFormat(StrEnum):
    JSON = "json"
    AVRO_GLUE = "avro-glue"  # 03 | compression | 16-byte schema version UUID | Avro body
    AVRO_SINGLE_OBJECT = "avro-single-object"  # C3 01 | 8-byte CRC-64-AVRO fingerprint (LE) | Avro body


class Decoded(NamedTuple):  # immutable, and half the cost of a frozen dataclass: one is made per event
    event: dict[str, Any]  # conforms to the newest version of its type; event_time in epoch millis
    writer: SchemaVersion
    wire_format: WireFormat


# What NamedTuple's generated __new__ calls, minus its Python frame (half the cost of `Decoded(...)`).
_new_tuple = tuple.__new__


def to_millis(value: datetime | int) -> int:
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MS
    return value


def _normalise(record: dict[str, Any]) -> None:
    """fastavro materialises logical types; events keep their JSON shape (millis, UUID string)."""
    record["event_time"] = to_millis(record["event_time"])
    record["event_id"] = str(record["event_id"])


def encode_json(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def encode_avro(
    event: dict[str, Any],
    wire_format: WireFormat = WireFormat.AVRO_GLUE,
    schema_version_id: uuid.UUID | None = None,
    compress: bool = False,
    the_contract: Contract | None = None,
) -> bytes:
    """Avro body of `event` (written with the version its `schema_version` names) behind a header."""
    c = the_contract or contract()
    sv = c.version(event["event_type"], event["schema_version"])
    body = io.BytesIO()
    schemaless_writer(body, sv.parsed, event)
    if wire_format is WireFormat.AVRO_SINGLE_OBJECT:
        return SINGLE_OBJECT_MAGIC + sv.fingerprint + body.getvalue()
    if wire_format is WireFormat.AVRO_GLUE:
        data = zlib.compress(body.getvalue()) if compress else body.getvalue()
        compression = GLUE_COMPRESSION_ZLIB if compress else GLUE_COMPRESSION_NONE
        return bytes([GLUE_HEADER_VERSION, compression]) + (schema_version_id or sv.local_uuid).bytes + data
    raise ValueError(f"not an Avro wire format: {wire_format}")


def encode(event: dict[str, Any], wire_format: WireFormat) -> bytes:
    return encode_json(event) if wire_format is WireFormat.JSON else encode_avro(event, wire_format)


def decode(data: bytes, the_contract: Contract | None = None) -> Decoded:
    c = the_contract or contract()
    if len(data) > MAX_RECORD_BYTES:
        raise DecodeError(BadRowReason.OVERSIZE, f"record is {len(data)} bytes, limit {MAX_RECORD_BYTES}")
    first = data[:1]
    if first == b"{":  # neither header's first byte: JSON, the common case, tested first
        return _decode_json(data, c)
    if first == _GLUE_FIRST_BYTE and len(data) >= 18:
        # A header seen before (uncompressed, registered): its writer and fused decode at once.
        plan = c.decode_plans.get(data[:18])
        if plan is not None and (event := plan[1](data, 18)) is not None:
            return _new_tuple(Decoded, (event, plan[0], WireFormat.AVRO_GLUE))
        return _decode_glue(data, c)
    if data[:2] == SINGLE_OBJECT_MAGIC:
        plan = c.decode_plans.get(data[:10])
        if plan is not None and (event := plan[1](data, 10)) is not None:
            return _new_tuple(Decoded, (event, plan[0], WireFormat.AVRO_SINGLE_OBJECT))
        return _decode_single_object(data, c)
    return _decode_json(data, c)


def _decode_glue(data: bytes, c: Contract) -> Decoded:
    compression = data[1]
    sv = c.by_uuid_bytes.get(data[2:18])
    if sv is None:
        raise DecodeError(
            BadRowReason.UNKNOWN_SCHEMA_VERSION,
            f"Glue schema version id {_uuid_of(data[2:18])} is not registered",
        )
    if compression == GLUE_COMPRESSION_NONE:
        fast = _avro_plan(sv, c.latest_by_type[sv.event_type]).fast
        if fast is not None:
            c.decode_plans[data[:18]] = (sv, fast)
            if (event := fast(data, 18)) is not None:
                return _new_tuple(Decoded, (event, sv, WireFormat.AVRO_GLUE))
    body, start = data, 18
    if compression == GLUE_COMPRESSION_ZLIB:
        try:
            body, start = zlib.decompress(data[18:]), 0
        except zlib.error as exc:
            raise DecodeError(BadRowReason.UNPARSEABLE, f"zlib body does not inflate: {exc}") from None
    elif compression != GLUE_COMPRESSION_NONE:
        raise DecodeError(BadRowReason.UNPARSEABLE, f"unknown Glue compression byte {compression}")
    reader = c.latest_by_type[sv.event_type]
    return _finish(_read_avro(body, sv, reader, start), sv, WireFormat.AVRO_GLUE, c, reader.version)


def _decode_single_object(data: bytes, c: Contract) -> Decoded:
    fp = data[2:10]
    sv = c.by_fingerprint.get(fp)
    if sv is None:
        raise DecodeError(BadRowReason.UNKNOWN_SCHEMA_VERSION, f"no schema has fingerprint {fp[::-1].hex()}")
    reader = c.latest_by_type[sv.event_type]
    fast = _avro_plan(sv, reader).fast
    if fast is not None:
        c.decode_plans[data[:10]] = (sv, fast)
        if (event := fast(data, 10)) is not None:
            return _new_tuple(Decoded, (event, sv, WireFormat.AVRO_SINGLE_OBJECT))
    return _finish(_read_avro(data, sv, reader, 10), sv, WireFormat.AVRO_SINGLE_OBJECT, c, reader.version)


@lru_cache(maxsize=1024)
def _uuid_of(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=raw)  # a handful of schema versions: parse each header id once


_ENVELOPE_LOGICAL = {"event_id": "uuid", "event_time": "timestamp-millis"}
_RAW_SCHEMAS: dict[bytes, Any] = {}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_CANONICAL_UUID_MATCH = _CANONICAL_UUID.match


def _raw_schema(sv: SchemaVersion) -> Any:
    """`sv` with the envelope's uuid / timestamp-millis read as their base types: the same bytes, but
    fastavro makes no UUID and datetime objects that `_normalise` would turn back (half the read time)."""
    raw = _RAW_SCHEMAS.get(sv.fingerprint)
    if raw is None:
        raw = _RAW_SCHEMAS[sv.fingerprint] = parse_schema(_raw_definition(sv))
    return raw


def _raw_definition(sv: SchemaVersion) -> dict[str, Any]:
    definition = copy.deepcopy(sv.definition)
    for f in definition["fields"]:
        logical = _ENVELOPE_LOGICAL.get(f["name"])
        if logical and isinstance(f["type"], dict) and f["type"].get("logicalType") == logical:
            f["type"] = f["type"]["type"]
    return definition


_RAW_DECODERS: dict[bytes, Decoder | None] = {}


def _raw_decoder(writer: SchemaVersion) -> Decoder | None:
    try:
        return compile_reader(_raw_definition(writer))
    except NotImplementedError:
        return None


def _canonical_event_id(record: dict[str, Any], writer: SchemaVersion) -> None:
    """What fastavro's uuid reader did: refuse a malformed id, give the canonical lower-case form."""
    event_id = record["event_id"]
    if _CANONICAL_UUID.match(event_id):
        return
    try:
        record["event_id"] = str(uuid.UUID(event_id))
    except ValueError:
        raise DecodeError(
            BadRowReason.UNPARSEABLE,
            f"Avro body does not match {writer.id}: event_id {event_id!r} is not a UUID",
        ) from None


class _AvroPlan(NamedTuple):
    """How bodies of one writer are read as one reader: looked up once per event, not pieced together."""

    plain: bool  # read as the writer (then upcast if needed), not resolved by fastavro
    decoder: Decoder | None  # the compiled raw decoder, when plain and it compiles
    upcast: Upcaster | None  # writer -> reader, None when the versions are the same or fastavro resolves
    fast: FastRead | None  # the whole decode of a regular body in one function (see `_compile_fast_read`)


# (the whole record, Glue or single-object, and where its uncompressed Avro body starts) -> the decoded
# event, or None for anything irregular: then the step-by-step path decides, with its error text.
FastRead = Callable[[bytes, int], "dict[str, Any] | None"]


def _compile_fast_read(
    writer: SchemaVersion, reader: SchemaVersion, upcast: Upcaster | None
) -> FastRead | None:
    """`_read_avro` + `_finish` for a body that needs none of their fallbacks, as one generated
    function: the compiled raw read, then the same checks in the same order (canonical event_id,
    upcast, event_type, event_time range, newest schema_version). Each frame and lookup it saves is
    ~0.1 us on a ~5 us decode. Returns None (never raises) when the step-by-step path must decide."""
    namespace = reader_namespace()
    try:
        lines, result = reader_statements(_raw_definition(writer), 2, namespace, end_checked=True)
    except NotImplementedError:
        return None
    namespace.update(
        _uuid_match=_CANONICAL_UUID_MATCH,
        _upcast=upcast,
        _EVENT_TYPE=writer.event_type,
        _LATEST=reader.version,
        _MIN=MIN_EVENT_TIME_MS,
        _MAX=MAX_EVENT_TIME_MS,
    )
    source = "\n".join(
        [
            "def fast_read(b, p):",
            "    n = len(b)",
            "    try:",
            *lines,
            "        if p != n:",
            "            return None",
            f"        r = {result}",
            "        if not _uuid_match(r['event_id']):",
            "            return None",
            *(["        r = _upcast(r)"] if upcast is not None else []),
            "        if r['event_type'] != _EVENT_TYPE or not _MIN <= r['event_time'] < _MAX:",
            "            return None",
            "        r['schema_version'] = _LATEST",
            "        return r",
            "    except Exception:",
            "        return None",
        ]
    )
    exec(compile(source, f"<avro fast read {writer.id}>", "exec"), namespace)
    fast: FastRead = namespace["fast_read"]
    return fast


_AVRO_PLANS: dict[tuple[bytes, bytes], _AvroPlan] = {}


def _avro_plan(writer: SchemaVersion, reader: SchemaVersion) -> _AvroPlan:
    key = (writer.fingerprint, reader.fingerprint)
    plan = _AVRO_PLANS.get(key)
    if plan is None:
        # Newest writer: read plain (fastavro deep-compares the two schemas first otherwise). Older: read
        # plain and resolve with the compiled upcaster, or let fastavro resolve when none compiles.
        upcast = None if writer.version == reader.version else upcaster(writer, reader)
        plain = writer.version == reader.version or upcast is not None
        if plain and writer.fingerprint not in _RAW_DECODERS:
            _RAW_DECODERS[writer.fingerprint] = _raw_decoder(writer)
        decoder = _RAW_DECODERS[writer.fingerprint] if plain else None
        fast = _compile_fast_read(writer, reader, upcast) if decoder is not None else None
        plan = _AVRO_PLANS[key] = _AvroPlan(plain, decoder, upcast, fast)
    return plan


def _read_avro(data: bytes, writer: SchemaVersion, reader: SchemaVersion, start: int = 0) -> dict[str, Any]:
    """The Avro body `data[start:]` (not copied out on the fast path) read as `reader`."""
    plain, decoder, upcast, _ = _avro_plan(writer, reader)
    record = None
    if decoder is not None:
        try:
            record, end = decoder(data, start)
        except Exception:  # Unreadable, IndexError past the end, UnicodeDecodeError: fastavro's call
            record = None
        else:
            if end != len(data):
                record = None
    if record is None:  # an older writer fastavro must resolve, or a body the fast path left to fastavro
        body = data[start:] if start else data
        stream = io.BytesIO(body)
        try:
            if plain:
                record = schemaless_reader(stream, _raw_schema(writer), None)
            else:
                record = schemaless_reader(stream, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises many types on corrupt input; all mean the same here
            raise DecodeError(
                BadRowReason.UNPARSEABLE, f"Avro body does not match {writer.id}: {type(exc).__name__}: {exc}"
            ) from None
        if stream.tell() != len(body):
            raise DecodeError(
                BadRowReason.UNPARSEABLE, f"{len(body) - stream.tell()} trailing bytes after {writer.id} body"
            )
    if not isinstance(record, dict):
        raise DecodeError(BadRowReason.UNPARSEABLE, f"Avro body of {writer.id} is not a record")
    if plain:
        if not _CANONICAL_UUID_MATCH(record["event_id"]):
            _canonical_event_id(record, writer)
        if upcast is not None:
            record = upcast(record)
    else:
        _normalise(record)
    if record["event_type"] != writer.event_type:
        raise DecodeError(
            BadRowReason.SCHEMA_VIOLATION,
            f"event_type {record['event_type']!r} in a {writer.id} record",
            field="event_type",
        )
    return record


def _decode_json(data: bytes, c: Contract) -> Decoded:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(
            BadRowReason.UNPARSEABLE, f"neither JSON nor Avro with a known header: {exc}"
        ) from None
    if type(event) is dict:  # a version seen before: its writer and fused decode at once
        event_type, version = event.get("event_type"), event.get("schema_version")
        if type(event_type) is str and type(version) is int:  # hashable, and no bool for an int
            plan = c.decode_plans.get((event_type, version))
            if plan is not None and (done := plan[1](event)) is not None:
                return _new_tuple(Decoded, (done, plan[0], WireFormat.JSON))
    if not isinstance(event, dict):
        raise DecodeError(
            BadRowReason.SCHEMA_VIOLATION, f"expected a JSON object, got {type(event).__name__}", "$"
        )
    event_type = event.get("event_type")
    if not isinstance(event_type, str):
        raise DecodeError(
            BadRowReason.SCHEMA_VIOLATION, "event_type is missing or not a string", "event_type"
        )
    chain = c.versions.get(event_type)
    if chain is None:
        raise DecodeError(BadRowReason.UNKNOWN_EVENT_TYPE, f"unknown event_type {event_type!r}")
    version = event.get("schema_version")
    if type(version) is not int:
        raise DecodeError(
            BadRowReason.SCHEMA_VIOLATION, "schema_version is missing or not an int", "schema_version"
        )
    writer = chain.get(version)
    if writer is None:
        raise DecodeError(
            BadRowReason.UNKNOWN_SCHEMA_VERSION, f"{event_type} has no v{version} (known: {sorted(chain)})"
        )
    latest = c.latest_by_type[event_type]
    fast = _JSON_FAST.get((writer.fingerprint, latest.fingerprint), _NOT_COMPILED)
    if fast is _NOT_COMPILED:
        fast = _JSON_FAST[(writer.fingerprint, latest.fingerprint)] = _compile_fast_json(writer, latest)
    if fast is not None:
        c.decode_plans[(event_type, version)] = (writer, fast)
        if (done := fast(event)) is not None:
            return _new_tuple(Decoded, (done, writer, WireFormat.JSON))
    try:
        # raise_errors=True builds an exception per rejected union branch (12x slower on valid rows):
        # check cheaply first, and ask for the failing field only when the row is bad.
        check = json_check(writer)
        if not (check is not None and check(event)) and not validate(
            event, writer.parsed, raise_errors=False
        ):
            validate(event, writer.parsed, raise_errors=True)
    except ValidationError as exc:
        first = exc.errors[0]
        path = _field_path(first.field, event_type)
        raise DecodeError(
            BadRowReason.SCHEMA_VIOLATION,
            f"{path}: {first.datum!r} is not a valid {_type_name(first.schema)} for {writer.id}",
            field=path,
        ) from None
    # JSON carries extra keys through validation; resolution to the newest version drops them, as
    # readers would: with the compiled upcaster, else with an Avro round trip through fastavro.
    if writer.version != latest.version or len(event) != len(writer.definition["fields"]):
        upcast = upcaster(writer, latest)
        if upcast is not None:
            return _finish(upcast(event), writer, WireFormat.JSON, c, latest.version)
        buffer = io.BytesIO()
        schemaless_writer(buffer, writer.parsed, event)
        buffer.seek(0)
        event = cast(dict[str, Any], schemaless_reader(buffer, writer.parsed, latest.parsed))
        _normalise(event)
    return _finish(event, writer, WireFormat.JSON, c, latest.version)


_JSON_CHECKS: dict[bytes, Check | None] = {}
# A validated JSON event of the writer, resolved to the reader, or None: then the step-by-step path.
FastJson = Callable[[dict[str, Any]], "dict[str, Any] | None"]
_JSON_FAST: dict[tuple[bytes, bytes], FastJson | None] = {}
_NOT_COMPILED: Any = object()


def _compile_fast_json(writer: SchemaVersion, reader: SchemaVersion) -> FastJson | None:
    """The rest of `_decode_json` for an event the compiled check accepts, as one generated function:
    the check inline, the upcast when the version is older or there are extra keys, the event_time
    range and the newest schema_version (what `_finish` does). Returns None, with `event` untouched,
    whenever the step-by-step path must decide (fastavro's verdict, an error and its text)."""
    namespace = check_namespace()
    try:
        check = check_expression(writer.definition, "d", namespace)
    except NotCompiled:
        return None
    upcast = upcaster(writer, reader) if writer.version != reader.version else None
    if writer.version != reader.version and upcast is None:
        return None
    if upcast is None:  # same version: only extra keys need resolving (dropping them), rare
        resolve = [
            f"        if len(d) != {len(writer.definition['fields'])}:",
            "            if _extra is None:",
            "                return None",
            "            d = _extra(d)",
        ]
    else:
        resolve = ["        d = _upcast(d)"]
    namespace.update(
        _upcast=upcast,
        _extra=upcaster(writer, reader) if upcast is None else None,
        _LATEST=reader.version,
        _MIN=MIN_EVENT_TIME_MS,
        _MAX=MAX_EVENT_TIME_MS,
    )
    source = "\n".join(
        [
            "def fast_json(d):",
            "    try:",
            f"        if not {check}:",
            "            return None",
            *resolve,
            "        if not _MIN <= d['event_time'] < _MAX:",
            "            return None",
            "        d['schema_version'] = _LATEST",
            "        return d",
            "    except Exception:",
            "        return None",
        ]
    )
    exec(compile(source, f"<json fast decode {writer.id}>", "exec"), namespace)
    fast: FastJson = namespace["fast_json"]
    return fast


def json_check(writer: SchemaVersion) -> Check | None:
    """The compiled pre-check for JSON written as `writer`, or None where only fastavro validates."""
    if writer.fingerprint not in _JSON_CHECKS:
        try:
            _JSON_CHECKS[writer.fingerprint] = compile_check(writer.definition)
        except NotCompiled:
            _JSON_CHECKS[writer.fingerprint] = None
    return _JSON_CHECKS[writer.fingerprint]


_UPCASTERS: dict[tuple[bytes, bytes], Upcaster | None] = {}


def upcaster(writer: SchemaVersion, reader: SchemaVersion) -> Upcaster | None:
    """The compiled resolution from `writer` to `reader`, or None where fastavro must resolve."""
    key = (writer.fingerprint, reader.fingerprint)
    if key not in _UPCASTERS:
        try:
            _UPCASTERS[key] = compile_upcaster(writer.definition, reader.definition)
        except Unsupported:
            _UPCASTERS[key] = None
    return _UPCASTERS[key]


def _finish(
    event: dict[str, Any],
    writer: SchemaVersion,
    wire_format: WireFormat,
    c: Contract,
    latest: int | None = None,
) -> Decoded:
    ms = event["event_time"]
    if not MIN_EVENT_TIME_MS <= ms < MAX_EVENT_TIME_MS:
        raise DecodeError(
            BadRowReason.TIMESTAMP_OUT_OF_RANGE,
            f"event_time {ms} is outside [2000-01-01, 2100-01-01)",
            field="event_time",
        )
    event["schema_version"] = c.latest(writer.event_type).version if latest is None else latest
    return _new_tuple(Decoded, (event, writer, wire_format))


def _field_path(fastavro_field: str | None, event_type: str) -> str:
    """fastavro names fields `Record.field.Nested.field`; keep only the field names."""
    if not fastavro_field:
        return "$"
    parts = fastavro_field.split(".")
    return ".".join(parts[1::2]) or "$"


def _type_name(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("type"))
    if isinstance(schema, list):
        return " | ".join(_type_name(s) for s in schema)
    return str(schema)


def check_event_time_skew(event_time_ms: int, arrival_ms: int, tolerance_s: int) -> None:
    """Events dated further in the future than the tolerance are bad rows (a broken producer clock)."""
    if event_time_ms - arrival_ms > tolerance_s * 1000:
        ahead = (event_time_ms - arrival_ms) / 1000
        raise DecodeError(
            BadRowReason.FUTURE_EVENT_TIME,
            f"event_time is {ahead:.1f}s after arrival, tolerance {tolerance_s}s",
            field="event_time",
        )
