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
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple, cast

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from pipeline.contract.avro_reader import Decoder, compile_reader
from pipeline.contract.errors import BadRowReason, DecodeError
from pipeline.contract.schemas import Contract, SchemaVersion, contract
from pipeline.contract.upcast import Unsupported, Upcaster, compile_upcaster
from pipeline.contract.validate import Check, NotCompiled, compile_check

MAX_RECORD_BYTES = 1_048_576  # Kinesis data blob limit (1 MiB)
MIN_EVENT_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_EVENT_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z

GLUE_HEADER_VERSION = 3
GLUE_COMPRESSION_NONE = 0
GLUE_COMPRESSION_ZLIB = 5
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
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
    if data[:1] == bytes([GLUE_HEADER_VERSION]) and len(data) >= 18:
        return _decode_glue(data, c)
    if data[:2] == SINGLE_OBJECT_MAGIC:
        return _decode_single_object(data, c)
    return _decode_json(data, c)


def _decode_glue(data: bytes, c: Contract) -> Decoded:
    compression, version_id = data[1], _uuid_of(data[2:18])
    sv = c.by_uuid.get(version_id)
    if sv is None:
        raise DecodeError(
            BadRowReason.UNKNOWN_SCHEMA_VERSION, f"Glue schema version id {version_id} is not registered"
        )
    body = data[18:]
    if compression == GLUE_COMPRESSION_ZLIB:
        try:
            body = zlib.decompress(body)
        except zlib.error as exc:
            raise DecodeError(BadRowReason.UNPARSEABLE, f"zlib body does not inflate: {exc}") from None
    elif compression != GLUE_COMPRESSION_NONE:
        raise DecodeError(BadRowReason.UNPARSEABLE, f"unknown Glue compression byte {compression}")
    reader = c.latest(sv.event_type)
    return _finish(_read_avro(body, sv, reader), sv, WireFormat.AVRO_GLUE, c, reader.version)


def _decode_single_object(data: bytes, c: Contract) -> Decoded:
    fp = data[2:10]
    sv = c.by_fingerprint.get(fp)
    if sv is None:
        raise DecodeError(BadRowReason.UNKNOWN_SCHEMA_VERSION, f"no schema has fingerprint {fp[::-1].hex()}")
    reader = c.latest(sv.event_type)
    return _finish(_read_avro(data[10:], sv, reader), sv, WireFormat.AVRO_SINGLE_OBJECT, c, reader.version)


@lru_cache(maxsize=1024)
def _uuid_of(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=raw)  # a handful of schema versions: parse each header id once


_ENVELOPE_LOGICAL = {"event_id": "uuid", "event_time": "timestamp-millis"}
_RAW_SCHEMAS: dict[bytes, Any] = {}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


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


def _read_compiled(body: bytes, writer: SchemaVersion) -> Any:
    """`body` read as `_raw_schema(writer)` by the compiled decoder (avro_reader), or None when the
    decoder does not exist or gives up: then fastavro reads it and names what is wrong."""
    if writer.fingerprint not in _RAW_DECODERS:
        _RAW_DECODERS[writer.fingerprint] = _raw_decoder(writer)
    decoder = _RAW_DECODERS[writer.fingerprint]
    if decoder is None:
        return None
    try:
        record, end = decoder(body)
    except Exception:  # Unreadable, IndexError past the end, UnicodeDecodeError: fastavro's call
        return None
    return record if end == len(body) else None


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


def _read_avro(body: bytes, writer: SchemaVersion, reader: SchemaVersion) -> dict[str, Any]:
    # Newest writer: read plain (fastavro deep-compares the two schemas first otherwise). Older: read
    # plain and resolve with the compiled upcaster, or let fastavro resolve when none compiles.
    upcast = None if writer.version == reader.version else upcaster(writer, reader)
    plain = writer.version == reader.version or upcast is not None
    record = _read_compiled(body, writer) if plain else None
    if record is None:  # an older writer fastavro must resolve, or a body the fast path left to fastavro
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
    if writer.version == reader.version or upcast is not None:
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
    latest = c.latest(event_type)
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
    return Decoded(event, writer, wire_format)


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
