"""The lake's tables: one per event type, `metrics` and `bad_rows`, each generated from an Avro schema.

The single source for the Parquet schema the lake writer uses, the Glue tables the CDK app creates
and the Athena DDL in `warehouse/athena/tables/` (`pipeline warehouse ddl`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import pyarrow as pa

from pipeline.contract.glue_types import GlueColumn, glue_columns
from pipeline.contract.schemas import SCHEMAS_DIR, Contract, contract
from pipeline.lake import layout
from pipeline.lake.arrow_types import arrow_schema

# Oldest date partition projection enumerates: the contract's minimum event time (2000-01-01).
PROJECTION_START = "2000-01-01"


@dataclass(frozen=True)
class Partition:
    """A string partition column and its Athena projection (`projection.<name>.*` properties)."""

    name: str
    projection: tuple[tuple[str, str], ...]


def _date_partition(name: str) -> Partition:
    return Partition(
        name,
        (
            ("type", "date"),
            ("format", "yyyy-MM-dd"),
            ("range", f"{PROJECTION_START},NOW"),
            ("interval", "1"),
            ("interval.unit", "DAYS"),
        ),
    )


_HOUR = Partition("event_hour", (("type", "integer"), ("range", "0,23"), ("digits", "2")))


@dataclass(frozen=True)
class LakeTable:
    name: str
    comment: str
    avro: dict[str, Any]  # an Avro record schema
    prefix: str  # bucket-relative, ending in `/`
    partitions: tuple[Partition, ...]

    @property
    def columns(self) -> list[GlueColumn]:
        return glue_columns(self.avro)

    @property
    def data_schema(self) -> pa.Schema:
        """The Parquet schema of this table's files."""
        return arrow_schema(self.avro)

    @property
    def partition_schema(self) -> pa.Schema:
        return pa.schema([pa.field(p.name, pa.string()) for p in self.partitions])

    @property
    def schema(self) -> pa.Schema:
        """Data columns then partition columns: what Athena (and the local engine) shows."""
        return pa.schema([*self.data_schema, *self.partition_schema])

    def location(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.prefix}"

    def table_properties(self, bucket: str) -> dict[str, str]:
        """Partition projection: Athena computes partitions from these, no crawler, no MSCK REPAIR."""
        props = {"projection.enabled": "true"}
        for partition in self.partitions:
            props.update({f"projection.{partition.name}.{k}": v for k, v in partition.projection})
        template = "".join(f"{p.name}=${{{p.name}}}/" for p in self.partitions)
        props["storage.location.template"] = f"{self.location(bucket)}{template}"
        props["classification"] = "parquet"
        return props


def _schema_file(name: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS_DIR / name).read_text()))


@cache
def metric_row_schema() -> dict[str, Any]:
    return _schema_file("metric_row.avsc")


@cache
def bad_row_schema() -> dict[str, Any]:
    return _schema_file("bad_row.avsc")


def events_table_name(event_type: str) -> str:
    return f"events_{event_type}"


def events_table(event_type: str, the_contract: Contract | None = None) -> LakeTable:
    c = the_contract or contract()
    return LakeTable(
        name=events_table_name(event_type),
        comment=f"Enriched {event_type} events (newest schema v{c.latest(event_type).version}), by event time.",
        avro=c.enriched_schema(event_type),
        prefix=layout.events_table_prefix(event_type),
        partitions=(_date_partition("event_date"), _HOUR),
    )


def metrics_table() -> LakeTable:
    return LakeTable(
        name="metrics",
        comment="Flink metric changelog rows (versioned upserts); read metrics_latest for current values.",
        avro=metric_row_schema(),
        prefix=layout.CURATED_METRICS,
        partitions=(_date_partition("window_date"),),
    )


def bad_rows_table() -> LakeTable:
    return LakeTable(
        name="bad_rows",
        comment="Records a stage rejected, archived from the DLQ and the lake writer.",
        avro=bad_row_schema(),
        prefix=layout.BAD,
        partitions=(_date_partition("failed_date"),),
    )


def lake_tables(the_contract: Contract | None = None) -> list[LakeTable]:
    """Every table of the lake, in a stable order."""
    c = the_contract or contract()
    return [*(events_table(t, c) for t in c.event_types), metrics_table(), bad_rows_table()]
