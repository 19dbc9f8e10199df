"""Avro binary bodies read by decoders compiled once per schema: the same dicts as fastavro's
`schemaless_reader` (without a reader schema) on every body fastavro reads, several times faster.

Why not just fastavro: the enricher decodes every event, and `schemaless_reader` costs ~10 us per small
event (stream object, per-field generic dispatch), about half of the enricher's budget. The compiled
decoder is a fast path only: it raises `Unreadable` on anything unusual (truncated body, varint over 64
bits, negative length, enum or union index out of range, invalid UTF-8) and the codec then reads the
body with fastavro, so malformed input keeps fastavro's verdict and error text. Only the types the
contract uses are compiled (records, enums, [null, T] unions, strings, numbers, booleans); any other
schema raises `NotImplementedError` and the codec keeps fastavro for it. Equality with fastavro is
tested over whole workloads (tests/unit/contract/test_avro_reader.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

# (the datum, the position after it); an optional second argument is where the body starts (default 0)
Decoder = Callable[..., tuple[Any, int]]

_FLOAT = struct.Struct("<f").unpack_from
_DOUBLE = struct.Struct("<d").unpack_from


class Unreadable(ValueError):
    """The fast path gives up on this body: read it with fastavro for the verdict."""


def _unreadable(what: str) -> Any:
    raise Unreadable(what)


def reader_namespace() -> dict[str, Any]:
    """The names the statements of `reader_statements` use: the namespace to exec them in."""
    return {"_F": _FLOAT, "_D": _DOUBLE, "_unreadable": _unreadable, "Unreadable": Unreadable}


def reader_statements(
    schema: Any, indent: int, namespace: dict[str, Any], end_checked: bool = False
) -> tuple[list[str], str]:
    """Statements (at `indent` levels) reading `schema` from `b` at position `p` (`n` = len(b)), and
    an expression of the value read: for callers that wrap more around the read (the codec's fused
    decode). Unreadable input raises as `compile_reader` describes; NotImplementedError when a type
    is not compiled. `end_checked`: the caller rejects any read that does not end exactly at `n`, so
    a string running past the end need not raise where it is read (positions only grow: it cannot
    end at `n`), which saves a comparison per string."""
    lines: list[str] = []
    result = _read(schema, lines, indent, namespace, [0], not end_checked)
    return lines, result


def compile_reader(schema: Any) -> Decoder:
    """A decoder of `schema` (a JSON-ready schema dict, not fastavro's parsed form).

    The schema becomes the source of one straight-line Python function over the body and a position
    (as `pipeline.produce.avro_writer` does for writing): no stream object, no per-field dispatch.
    Positions past the end raise IndexError or Unreadable; callers treat both as "ask fastavro".
    """
    namespace = reader_namespace()
    lines, result = reader_statements(schema, 1, namespace)
    # `p`: where the body starts in `b`, so a caller need not copy it out from behind a header.
    source = "\n".join(["def decode(b, p=0):", "    n = len(b)", *lines, f"    return {result}, p"])
    exec(compile(source, f"<avro decoder {schema.get('name', '?')}>", "exec"), namespace)
    decoder: Decoder = namespace["decode"]
    return decoder


def _long(lines: list[str], pad: str, var: str) -> None:
    """Statements leaving the zig-zag long at position p in `var`: one byte inline (the common case),
    up to ten unrolled (event times take six, and the loop cost a third more), a loop beyond."""
    lines += [f"{pad}{var} = b[p]", f"{pad}p += 1", f"{pad}if {var} & 128:", f"{pad}    {var} &= 127"]
    inner = pad + "    "
    for k in range(1, 10):
        lines += [f"{inner}{var} |= ((x := b[p]) & 127) << {7 * k}", f"{inner}p += 1", f"{inner}if x & 128:"]
        inner += "    "
    lines += [
        f"{inner}s = 70",
        f"{inner}while (x := b[p]) & 128:",
        f"{inner}    {var} |= (x & 127) << s",
        f"{inner}    p += 1",
        f"{inner}    s += 7",
        f"{inner}{var} |= x << s",
        f"{inner}p += 1",
        f"{pad}    if {var} >> 64:",
        f"{pad}        raise Unreadable('varint over 64 bits')",
        f"{pad}{var} = ({var} >> 1) ^ -({var} & 1)",
    ]


def _length(lines: list[str], pad: str, var: str) -> None:
    """A string length at position p into `var`: one byte holding a non-negative length (under 64)
    needs only a shift; anything else takes the general path."""
    lines += [
        f"{pad}if (({var} := b[p]) & 129) == 0:",
        f"{pad}    p += 1",
        f"{pad}    {var} >>= 1",
        f"{pad}else:",
    ]
    _long(lines, pad + "    ", var)
    lines += [f"{pad}    if {var} < 0:", f"{pad}        raise Unreadable('negative length')"]


def _read(
    schema: Any,
    lines: list[str],
    indent: int,
    ns: dict[str, Any],
    counter: list[int],
    string_ends: bool = True,
) -> str:
    """Append statements reading `schema` at position p; return an expression of the value read."""
    pad = "    " * indent
    counter[0] += 1
    var = f"v{counter[0]}"
    if isinstance(schema, dict) and schema["type"] != "record" and schema["type"] != "enum":
        if "logicalType" in schema:
            raise NotImplementedError(f"logical type {schema['logicalType']} is not compiled")
        schema = schema["type"]
    if schema in ("int", "long"):
        _long(lines, pad, var)
        return var
    if schema == "string":
        _length(lines, pad, var)
        # Checked after the slice (a short slice of a truncated body decodes harmlessly or raises
        # UnicodeDecodeError, both "ask fastavro"): one comparison instead of an addition and one.
        lines.append(f"{pad}{var} = b[p : (p := p + {var})].decode()")
        if string_ends:
            lines += [f"{pad}if p > n:", f"{pad}    raise Unreadable('string length')"]
        return var
    if schema == "float":
        lines += [f"{pad}({var},) = _F(b, p)", f"{pad}p += 4"]
        return var
    if schema == "double":
        lines += [f"{pad}({var},) = _D(b, p)", f"{pad}p += 8"]
        return var
    if schema == "boolean":
        # fastavro: any byte other than 1 reads as False
        lines += [f"{pad}{var} = b[p] == 1", f"{pad}p += 1"]
        return var
    if schema == "null":
        return "None"
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise NotImplementedError(f"only [null, T] unions are compiled, not {schema!r}")
        null_index = schema.index("null")
        # The branch index in its one-byte zig-zag form (0 -> 0, 1 -> 2); longer encodings of the same
        # index are valid Avro but never written: fastavro reads those.
        lines += [
            f"{pad}{var} = b[p]",
            f"{pad}p += 1",
            f"{pad}if {var} == {2 * null_index}:",
            f"{pad}    {var} = None",
            f"{pad}elif {var} == {2 * (1 - null_index)}:",
        ]
        value = _read(schema[1 - null_index], lines, indent + 1, ns, counter, string_ends)
        lines += [f"{pad}    {var} = {value}", f"{pad}else:", f"{pad}    raise Unreadable('union index')"]
        return var
    if isinstance(schema, dict) and schema["type"] == "enum":
        table = f"_E{len(ns)}"
        ns[table] = tuple(schema["symbols"])
        _long(lines, pad, var)
        lines += [
            f"{pad}{var} = {table}[{var}] if 0 <= {var} < {len(schema['symbols'])} else _unreadable('enum index')"
        ]
        return var
    if isinstance(schema, dict) and schema["type"] == "record":
        values = [
            (f["name"], _read(f["type"], lines, indent, ns, counter, string_ends)) for f in schema["fields"]
        ]
        return "{" + ", ".join(f"{name!r}: {value}" for name, value in values) + "}"
    raise NotImplementedError(f"no compiled decoder for {schema!r}")
