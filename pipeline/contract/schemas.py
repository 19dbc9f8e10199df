"""Loads `schemas/`: each event type's versions, composed from the shared envelope plus its payload."""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.config import REPO_ROOT

SCHEMAS_DIR = Path(os.environ.get("PIPELINE_SCHEMAS_DIR", REPO_ROOT / "schemas"))
# Namespace of the deterministic schema-version UUIDs used when no Glue registry assigned one.
_LOCAL_UUID_NAMESPACE = uuid.UUID("6f1c1a52-3f7e-4d6e-9a57-1d0b7c1f0a11")
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


def _camel(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.split("_"))


def compose(event_type: str, payload: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    """The full record schema that travels on the wire: envelope fields + `payload`."""
    return {
        "type": "record",
        "name": f"{_camel(event_type)}Event",
        "fields": [*copy.deepcopy(envelope["fields"]), {"name": "payload", "type": copy.deepcopy(payload)}],
    }


@dataclass(frozen=True)
class SchemaVersion:
    event_type: str
    version: int
    definition: dict[str, Any]  # the composed schema as JSON-ready dict
    parsed: Any = field(repr=False, compare=False)
    fingerprint: bytes = field(repr=False)  # CRC-64-AVRO of the parsing canonical form, 8 bytes LE

    @property
    def id(self) -> str:
        return f"{self.event_type}.v{self.version}"

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @property
    def local_uuid(self) -> uuid.UUID:
        """Stand-in for the Glue schema version id when no registry assigned one."""
        return uuid.uuid5(_LOCAL_UUID_NAMESPACE, f"{self.id}:{self.fingerprint_hex}")

    @property
    def text(self) -> str:
        return json.dumps(self.definition, separators=(",", ":"))


def make_version(event_type: str, version: int, definition: dict[str, Any]) -> SchemaVersion:
    canonical = to_parsing_canonical_form(definition)
    # fastavro returns the CRC-64-AVRO as big-endian hex; single-object encoding wants little-endian.
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))[::-1]
    return SchemaVersion(event_type, version, definition, parse_schema(copy.deepcopy(definition)), fp)


@dataclass
class Contract:
    """Every schema version of every event type, indexed for decoding."""

    versions: dict[str, dict[int, SchemaVersion]]
    envelope: dict[str, Any]
    enrichment: dict[str, Any]
    compatibility: dict[str, str]
    by_fingerprint: dict[bytes, SchemaVersion] = field(default_factory=dict)
    by_uuid: dict[uuid.UUID, SchemaVersion] = field(default_factory=dict)
    # The same, keyed by the 16 header bytes: a UUID made and hashed per event costs ~0.5 us.
    by_uuid_bytes: dict[bytes, SchemaVersion] = field(default_factory=dict, repr=False)
    latest_by_type: dict[str, SchemaVersion] = field(default_factory=dict)  # the decoder asks per event
    # The codec's per-event shortcuts, filled on first use: wire header or JSON (event_type,
    # schema_version) -> (writer, its fused decode). Only registered versions get one (bounded).
    decode_plans: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for event_type, chain in self.versions.items():
            for sv in chain.values():
                self.by_fingerprint[sv.fingerprint] = sv
                self.by_uuid[sv.local_uuid] = sv
                self.by_uuid_bytes[sv.local_uuid.bytes] = sv
            if chain:
                self.latest_by_type[event_type] = chain[max(chain)]

    @property
    def event_types(self) -> list[str]:
        return sorted(self.versions)

    def latest(self, event_type: str) -> SchemaVersion:
        return self.latest_by_type[event_type]

    def version(self, event_type: str, version: int) -> SchemaVersion:
        return self.versions[event_type][version]

    def register_uuid(self, schema_version_id: uuid.UUID, sv: SchemaVersion) -> None:
        """Record the id a Glue Schema Registry assigned to `sv`, so its wire header decodes."""
        self.by_uuid[schema_version_id] = sv
        self.by_uuid_bytes[schema_version_id.bytes] = sv
        self.decode_plans.clear()

    def mode(self, event_type: str) -> str:
        return self.compatibility.get(event_type, self.compatibility["registry_default"])

    def enriched_schema(self, event_type: str) -> dict[str, Any]:
        """Newest version of `event_type` plus the `enrichment` record: the enriched stream's rows."""
        latest = copy.deepcopy(self.latest(event_type).definition)
        latest["name"] = f"Enriched{latest['name']}"
        latest["fields"].append({"name": "enrichment", "type": copy.deepcopy(self.enrichment)})
        return latest


def load_contract(directory: Path | None = None) -> Contract:
    directory = directory or SCHEMAS_DIR
    envelope = json.loads((directory / "envelope.avsc").read_text())
    enrichment = json.loads((directory / "enrichment.avsc").read_text())
    compatibility = json.loads((directory / "compatibility.json").read_text())
    versions: dict[str, dict[int, SchemaVersion]] = {}
    for type_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        chain: dict[int, SchemaVersion] = {}
        for file in sorted(type_dir.iterdir()):
            match = _VERSION_FILE.match(file.name)
            if not match:
                raise ValueError(f"{file}: schema files must be named v<N>.avsc")
            payload = json.loads(file.read_text())
            chain[int(match[1])] = make_version(
                type_dir.name, int(match[1]), compose(type_dir.name, payload, envelope)
            )
        if sorted(chain) != list(range(1, len(chain) + 1)):
            raise ValueError(f"{type_dir}: versions must be v1..vN without gaps, found {sorted(chain)}")
        versions[type_dir.name] = chain
    return Contract(
        versions=versions,
        envelope=envelope,
        enrichment=enrichment,
        compatibility={"registry_default": compatibility["registry_default"], **compatibility["subjects"]},
    )


@cache
def contract() -> Contract:
    """The shipped contract, loaded once per process."""
    return load_contract()
