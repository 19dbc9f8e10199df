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


def compile_check(schema: Any) -> Check:
    """The check as one Python boolean expression compiled from the schema (as the Avro encoder in
    pipeline.produce.avro_writer is): a closure per field cost ~2 us of calls per event."""
    namespace = check_namespace()
    source = f"def check(d):\n    return bool({check_expression(schema, 'd', namespace)})"
    exec(compile(source, f"<json check {_name(schema)}>", "exec"), namespace)
    check: Check = namespace["check"]
    return check


def check_namespace() -> dict[str, Any]:
    """The names `check_expression` uses: the namespace to exec it in."""
    return {
        "INT_MIN": INT_MIN_VALUE,
        "INT_MAX": INT_MAX_VALUE,
        "LONG_MIN": LONG_MIN_VALUE,
        "LONG_MAX": LONG_MAX_VALUE,
    }


def check_expression(schema: Any, var: str, namespace: dict[str, Any]) -> str:
    """The check as a boolean expression over the variable `var`, for callers that wrap more around
    it (the codec's fused JSON decode). Raises NotCompiled as `compile_check` does."""
    return _expr(schema, var, var, namespace, [0])


def _name(schema: Any) -> str:
    return str(schema.get("name", "?")) if isinstance(schema, dict) else str(schema)


def _expr(schema: Any, first: str, var: str, ns: dict[str, Any], counter: list[int]) -> str:
    """A boolean expression: does the value pass `schema`? `first` is how the expression's first use
    gets the value (`(v := ...)`: evaluated once), `var` how later uses name it."""
    kind = _base_type(schema)
    if kind == "null":
        return f"{first} is None"
    if kind == "boolean":
        return f"({first} is True or {var} is False)"
    if kind == "string":
        return f"type({first}) is str"
    if kind == "int":
        return f"(type({first}) is int and INT_MIN <= {var} <= INT_MAX)"
    if kind == "long":
        return f"(type({first}) is int and LONG_MIN <= {var} <= LONG_MAX)"
    if kind in ("float", "double"):
        return f"((t := type({first})) is float or t is int)"
    if kind == "union":
        branches = [
            _expr(branch, first if i == 0 else var, var, ns, counter) for i, branch in enumerate(schema)
        ]
        return "(" + " or ".join(branches) + ")"
    if kind == "enum":
        symbols = f"_S{len(ns)}"
        ns[symbols] = frozenset(schema["symbols"])
        return f"(type({first}) is str and {var} in {symbols})"
    if kind == "record":
        parts = [f"type({first}) is dict", f"'-type' not in {var}"]
        for f in schema["fields"]:
            counter[0] += 1
            value = f"v{counter[0]}"
            default = f"_D{len(ns)}"
            ns[default] = f.get("default")
            parts.append(
                _expr(f["type"], f"({value} := {var}.get({f['name']!r}, {default}))", value, ns, counter)
            )
        return "(" + " and ".join(parts) + ")"
    raise NotCompiled(f"type {kind}")
