"""Avro schema resolution (writer version -> newest reader version), compiled once per version pair.

fastavro resolves schemas on every `schemaless_reader(..., reader_schema)` call: for a small event that
costs two to three times the read itself, and JSON input paid a write plus a resolving read on top.
The enricher decodes every event, so the resolution the contract's version chains need (fields added
with defaults, fields dropped, alias renames, int->long->float->double promotion, nullable unions) is
compiled here into plain Python functions. Anything outside that subset raises `Unsupported` at
compile time and the codec keeps using fastavro for that pair; tests check both paths agree.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable
from typing import Any

Upcaster = Callable[[Any], Any]
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NUMERIC_ORDER = {"int": 0, "long": 1, "float": 2, "double": 3}
_FLOAT32 = struct.Struct("<f")


class Unsupported(ValueError):
    """A writer/reader pair this compiler does not handle: resolve it with fastavro."""


def _identity(value: Any) -> Any:
    return value


def _to_float32(value: Any) -> Any:
    # An Avro `float` holds a 32-bit value; a JSON number written as one is rounded the same way.
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        if schema.get("logicalType"):
            return f"{schema['type']}:{schema['logicalType']}"
        return str(schema["type"])
    return str(schema)


def compile_upcaster(writer: Any, reader: Any) -> Upcaster:
    """A function turning a value of `writer` (as fastavro reads it, or as validated JSON) into the
    value a fastavro read with `reader` would give. Record values always come out as new dicts
    holding exactly the reader's fields."""
    w, r = _type_name(writer), _type_name(reader)
    if r == "union":
        return _to_union(writer, reader)
    if w == "union":
        raise Unsupported("a union written, a non-union read")
    if w == "record" and r == "record":
        return _record(writer, reader)
    if w == r and w in _PRIMITIVES:
        return _to_float32 if w == "float" else _identity
    if w in _NUMERIC_ORDER and r in _NUMERIC_ORDER and _NUMERIC_ORDER[w] < _NUMERIC_ORDER[r]:
        if w == "float":
            return _to_float32
        return float if r in ("float", "double") else _identity
    if (w, r) == ("string", "bytes"):
        return lambda value: value.encode()
    if (w, r) == ("bytes", "string"):
        return lambda value: value.decode()
    if w == r and ":" in w:  # the same logical type: the codec normalises these values itself
        return _identity
    if w == r and w in ("enum", "fixed") and writer == reader:
        return _identity
    if w == r == "array":
        item = compile_upcaster(writer["items"], reader["items"])
        return lambda value: [item(v) for v in value]
    if w == r == "map":
        entry = compile_upcaster(writer["values"], reader["values"])
        return lambda value: {k: entry(v) for k, v in value.items()}
    raise Unsupported(f"cannot resolve {w} to {r}")


def _to_union(writer: Any, reader: list[Any]) -> Upcaster:
    """Nullable unions (["null", X]) on both sides, or a plain type read as one of the reader's branches."""
    branches = [b for b in reader if b != "null"]
    if isinstance(writer, list):
        written = [b for b in writer if b != "null"]
        if len(written) != 1 or len(branches) != 1:
            raise Unsupported("only nullable unions of one type are compiled")
        inner = compile_upcaster(written[0], branches[0])
        if inner is _identity:
            return _identity
        return lambda value: None if value is None else inner(value)
    if writer == "null" and "null" in reader:
        return _identity
    for branch in branches:
        try:
            return compile_upcaster(writer, branch)
        except Unsupported:
            continue
    raise Unsupported(f"no branch of {reader} reads {_type_name(writer)}")


def _record(writer: dict[str, Any], reader: dict[str, Any]) -> Upcaster:
    """One generated function building the reader's dict (nested records inline) from the writer's
    value: a closure per field and a loop over a plan cost ~3 us more per upcast event."""
    namespace: dict[str, Any] = {"_deepcopy": copy.deepcopy}
    body = _record_expr(writer, reader, "value", "value", namespace)
    source = f"def upcast(value):\n    return {body}"
    exec(compile(source, f"<upcaster {reader.get('name', '?')}>", "exec"), namespace)
    upcast: Upcaster = namespace["upcast"]
    return upcast


def _record_expr(
    writer: dict[str, Any], reader: dict[str, Any], first: str, var: str, ns: dict[str, Any]
) -> str:
    """A dict display with exactly the reader's fields. `first` is how the first use of the writer's
    value gets it (a walrus for nested records: evaluated once), `var` how later uses name it.
    JSON may leave out a nullable field (fastavro's validation accepts that): it reads as the writer's
    default, as fastavro's own writer would, never as a KeyError."""
    written = {f["name"]: f for f in writer["fields"]}
    defaults = {f["name"]: f.get("default") for f in writer["fields"]}
    items: list[str] = []
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", [])]
        source = next((written[n] for n in names if n in written), None)
        if source is None:
            if "default" not in field:
                raise Unsupported(f"reader field {field['name']!r} has no writer field and no default")
            constant = _constant(field["default"], ns)
            value = f"_deepcopy({constant})" if isinstance(field["default"], dict | list) else constant
            items.append(f"{field['name']!r}: {value}")
            continue
        get = f"{first}.get({source['name']!r}, {_constant(defaults[source['name']], ns)})"
        first = var
        if _type_name(source["type"]) == "record" and _type_name(field["type"]) == "record":
            nested = f"_v{len(ns)}"
            ns[nested] = None  # reserves the name
            value = _record_expr(source["type"], field["type"], f"({nested} := {get})", nested, ns)
        else:
            up = compile_upcaster(source["type"], field["type"])
            value = get if up is _identity else f"{_constant(up, ns)}({get})"
        items.append(f"{field['name']!r}: {value}")
    return "{" + ", ".join(items) + "}"


def _constant(value: Any, ns: dict[str, Any]) -> str:
    name = f"_c{len(ns)}"
    ns[name] = value
    return name
