"""A compiled pre-check of JSON events against a writer schema, in front of fastavro's `validate`.

fastavro's validator walks the schema generically on every call (~8 us for a small event, most of the
JSON decode). The check compiled here accepts only what fastavro accepts (it is stricter: exact
`str`/`int`/`float`/`dict` types, no tuple union notation) and the codec asks fastavro whenever it says
no, so a row it rejects gets fastavro's verdict and field path. Schemas it cannot compile (named
references, arrays, maps, bytes, fixed) get no pre-check at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastavro.const import INT_MAX_VALUE, INT_MIN_VALUE, LONG_MAX_VALUE, LONG_MIN_VALUE

Check = Callable[[Any], bool]


class NotCompiled(ValueError):
    """A schema outside the compiled subset."""


def _base_type(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        # uuid and timestamp-millis only convert UUID / datetime objects before validating: a JSON value
        # is checked as its base type, exactly as fastavro does.
        if schema.get("logicalType") not in (None, "uuid", "timestamp-millis"):
            raise NotCompiled(f"logical type {schema['logicalType']}")
        return str(schema["type"])
    return str(schema)


def _is_int(d: Any) -> bool:
    return type(d) is int and INT_MIN_VALUE <= d <= INT_MAX_VALUE


def _is_long(d: Any) -> bool:
    return type(d) is int and LONG_MIN_VALUE <= d <= LONG_MAX_VALUE


_PRIMITIVE_CHECKS: dict[str, Check] = {
    "null": lambda d: d is None,
    "boolean": lambda d: d is True or d is False,
    "string": lambda d: type(d) is str,
    "int": _is_int,
    "long": _is_long,
    "float": lambda d: type(d) is float or type(d) is int,
    "double": lambda d: type(d) is float or type(d) is int,
}


def compile_check(schema: Any) -> Check:
    kind = _base_type(schema)
    if kind in _PRIMITIVE_CHECKS:
        return _PRIMITIVE_CHECKS[kind]
    if kind == "union":
        branches = [compile_check(branch) for branch in schema]
        if len(branches) == 2 and schema[0] == "null":
            inner = branches[1]
            return lambda d: d is None or inner(d)
        return lambda d: any(check(d) for check in branches)
    if kind == "enum":
        symbols = frozenset(schema["symbols"])
        return lambda d: type(d) is str and d in symbols
    if kind == "record":
        fields = [(f["name"], compile_check(f["type"]), f.get("default")) for f in schema["fields"]]

        def check_record(d: Any) -> bool:
            if type(d) is not dict or "-type" in d:
                return False
            for name, check, default in fields:  # noqa: SIM110 - a loop beats all(<genexpr>) here
                if not check(d.get(name, default)):
                    return False
            return True

        return check_record
    raise NotCompiled(f"type {kind}")
