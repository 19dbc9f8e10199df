"""Schema compatibility in the Glue Schema Registry modes, checked with Apache Avro's own checker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from pipeline.contract.schemas import SchemaVersion


class Mode(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"  # the new version reads data of the previous one
    BACKWARD_ALL = "BACKWARD_ALL"  # ... of every earlier one
    FORWARD = "FORWARD"  # the previous version reads data of the new one
    FORWARD_ALL = "FORWARD_ALL"
    FULL = "FULL"  # both, against the previous version
    FULL_ALL = "FULL_ALL"


@dataclass(frozen=True)
class Incompatibility:
    subject: str
    reader_version: int
    writer_version: int
    fields: tuple[str, ...]  # dotted paths of the offending fields
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.subject}: v{self.reader_version} cannot read data written by v{self.writer_version}: "
            f"field {', '.join(self.fields) or '?'} ({'; '.join(self.problems)})"
        )


def _parse(sv: SchemaVersion) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(sv.definition))


def _location_to_path(definition: dict[str, Any], location: str) -> str:
    """Turns the checker's JSON-pointer-like location (/fields/9/type/fields/3) into `payload.items`."""
    names: list[str] = []
    node: Any = definition
    parts = [p for p in location.split("/") if p]
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "fields" and i + 1 < len(parts) and isinstance(node, dict):
            field = node["fields"][int(parts[i + 1])]
            names.append(field["name"])
            node = field
            i += 2
            continue
        if part == "type" and isinstance(node, dict):
            node = node["type"]
            if isinstance(node, list):  # a nullable record: step into its record branch
                node = next((b for b in node if isinstance(b, dict)), node)
        i += 1
    return ".".join(names)


def check_pair(reader: SchemaVersion, writer: SchemaVersion) -> Incompatibility | None:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        reader=_parse(reader), writer=_parse(writer)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    # The checker also reports the enclosing record ("/"); the field paths are what a person needs.
    paths = sorted({p for loc in result.locations if (p := _location_to_path(reader.definition, loc))})
    problems = sorted(
        f"{kind.value}: {msg}" for kind, msg in zip(result.incompatibilities, result.messages, strict=False)
    )
    return Incompatibility(reader.event_type, reader.version, writer.version, tuple(paths), tuple(problems))


def check_new_version(new: SchemaVersion, earlier: list[SchemaVersion], mode: Mode) -> list[Incompatibility]:
    """Checks `new` against the `earlier` versions (oldest first) as registering it in `mode` would."""
    if mode is Mode.NONE or not earlier:
        return []
    against = earlier if mode.value.endswith("_ALL") else earlier[-1:]
    found: list[Incompatibility] = []
    for old in against:
        if mode in (Mode.BACKWARD, Mode.BACKWARD_ALL, Mode.FULL, Mode.FULL_ALL) and (
            bad := check_pair(new, old)
        ):
            found.append(bad)
        if mode in (Mode.FORWARD, Mode.FORWARD_ALL, Mode.FULL, Mode.FULL_ALL) and (
            bad := check_pair(old, new)
        ):
            found.append(bad)
    return found


def check_chain(chain: list[SchemaVersion], mode: Mode) -> list[Incompatibility]:
    """Every version of a subject checked against its predecessors, as if registered in order."""
    found: list[Incompatibility] = []
    for i in range(1, len(chain)):
        found.extend(check_new_version(chain[i], chain[:i], mode))
    return found
