"""The lake's tables and partitions in the Glue Data Catalog.

Athena finds partitions by projection (`LakeTable.table_properties`) and, with projection enabled,
ignores partitions registered in the catalog. Redshift Spectrum has no projection: it reads only
registered partitions. So the lake writer registers each partition it writes into, once per process
(`GlueCatalog.register`), and the tables keep projection for Athena.

Registration is idempotent (`AlreadyExistsException` is success), so a retried batch, or two Lambda
instances racing for the same new hour, register each partition exactly once in effect.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipeline.aws import client
from pipeline.config import Stage, stage
from pipeline.lake.tables import LakeTable, lake_tables

PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
BATCH_CREATE_LIMIT = 100  # BatchCreatePartition takes at most 100 partitions per call
ALREADY_EXISTS = "AlreadyExistsException"
# Per-entry errors of BatchCreatePartition worth another try; any other one (EntityNotFound,
# InvalidInput, AccessDenied, ResourceNumberLimitExceeded) will not heal by waiting.
TRANSIENT_ERRORS = frozenset(
    {
        "InternalServiceException",
        "OperationTimeoutException",
        "ThrottlingException",
        "ConcurrentModificationException",
        "ResourceNotReadyException",
    }
)
# `none` where no Glue exists: LocalStack's free edition (`pipeline up --target localstack`).
CATALOG_ENV = "LAKE_PARTITION_CATALOG"


@dataclass(frozen=True)
class LakePartition:
    """One partition of a lake table: its values in partition-key order and its bucket-relative prefix."""

    table: str
    values: tuple[str, ...]
    prefix: str


class PartitionRegistrationError(RuntimeError):
    """A partition could not be registered: the batch must fail so the mapping retries it."""


@cache
def _tables() -> tuple[LakeTable, ...]:
    return tuple(lake_tables())


def partition_of(key: str, tables: Iterable[LakeTable] | None = None) -> LakePartition:
    """The partition a lake object key (`<table prefix><name>=<value>/.../<file>`) lies in."""
    for table in tables if tables is not None else _tables():
        if not key.startswith(table.prefix):
            continue
        segments = key[len(table.prefix) :].split("/")
        folders = segments[: len(table.partitions)]
        if len(segments) <= len(table.partitions):
            raise ValueError(f"{key!r} is not an object inside a partition of {table.name}")
        values = []
        for partition, folder in zip(table.partitions, folders, strict=True):
            name, sep, value = folder.partition("=")
            if not sep or name != partition.name or not value:
                raise ValueError(f"{key!r}: expected a {partition.name}= folder, got {folder!r}")
            values.append(value)
        return LakePartition(table.name, tuple(values), table.prefix + "".join(f"{f}/" for f in folders))
    raise ValueError(f"{key!r} is in no lake table")


def table_input(table: LakeTable, bucket: str) -> dict[str, Any]:
    """The Glue `TableInput` of `table` (the CDK app's `AWS::Glue::Table` has exactly these properties)."""
    return {
        "Name": table.name,
        "Description": table.comment,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {**table.table_properties(bucket), "EXTERNAL": "TRUE"},
        "PartitionKeys": [{"Name": p.name, "Type": "string"} for p in table.partitions],
        "StorageDescriptor": {
            "Location": table.location(bucket),
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
            "Columns": [
                {"Name": c.name, "Type": c.type, **({"Comment": c.comment} if c.comment else {})}
                for c in table.columns
            ],
        },
    }


def partition_input(
    table_descriptor: dict[str, Any], bucket: str, partition: LakePartition
) -> dict[str, Any]:
    """A `PartitionInput`: the table's storage descriptor, located at the partition's prefix."""
    descriptor = copy.deepcopy(table_descriptor)
    descriptor["Location"] = f"s3://{bucket}/{partition.prefix}"
    return {"Values": list(partition.values), "StorageDescriptor": descriptor}


@dataclass(frozen=True)
class EntryErrors:
    """BatchCreatePartition's per-entry `Errors`, sorted by what to do about them."""

    retry: frozenset[tuple[str, ...]]
    fatal: dict[tuple[str, ...], str]


def entry_errors(errors: Iterable[dict[str, Any]]) -> EntryErrors:
    retry, fatal = set(), {}
    for error in errors:
        values = tuple(error.get("PartitionValues", []))
        detail = error.get("ErrorDetail", {})
        code = detail.get("ErrorCode", "")
        if code == ALREADY_EXISTS:
            continue
        if code in TRANSIENT_ERRORS:
            retry.add(values)
        else:
            fatal[values] = f"{code}: {detail.get('ErrorMessage', '')}"
    return EntryErrors(frozenset(retry), fatal)


@dataclass
class GlueCatalog:
    """Registers lake partitions in one Glue database; remembers what this process registered."""

    glue: Any  # a boto3 Glue client
    database: str
    bucket: str
    attempts: int = 5
    backoff_s: float = 0.2
    sleep: Callable[[float], None] = time.sleep
    registered: set[LakePartition] = field(default_factory=set)
    _descriptors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def register(self, partitions: Iterable[LakePartition]) -> list[LakePartition]:
        """Register the partitions this process has not registered yet; returns them. Raises
        `PartitionRegistrationError` when one cannot be registered (after retrying transient errors)."""
        new: dict[str, dict[tuple[str, ...], LakePartition]] = defaultdict(dict)
        for partition in partitions:
            if partition not in self.registered:
                new[partition.table][partition.values] = partition
        done: list[LakePartition] = []
        for table, by_values in sorted(new.items()):
            self._register_table(table, by_values)
            done.extend(by_values.values())
        return done

    def _descriptor(self, table: str) -> dict[str, Any]:
        # Once per table and process: a schema change deploys new Lambda code, so new instances.
        if table not in self._descriptors:
            got = self.glue.get_table(DatabaseName=self.database, Name=table)
            self._descriptors[table] = got["Table"]["StorageDescriptor"]
        return self._descriptors[table]

    def _register_table(self, table: str, by_values: dict[tuple[str, ...], LakePartition]) -> None:
        descriptor = self._descriptor(table)
        pending = dict(by_values)
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            chunk_list = list(pending.values())
            retry: set[tuple[str, ...]] = set()
            for start in range(0, len(chunk_list), BATCH_CREATE_LIMIT):
                chunk = chunk_list[start : start + BATCH_CREATE_LIMIT]
                response = self.glue.batch_create_partition(
                    DatabaseName=self.database,
                    TableName=table,
                    PartitionInputList=[partition_input(descriptor, self.bucket, p) for p in chunk],
                )
                errors = entry_errors(response.get("Errors", []))
                if errors.fatal:
                    detail = "; ".join(f"{list(v)}: {e}" for v, e in sorted(errors.fatal.items()))
                    raise PartitionRegistrationError(f"{self.database}.{table}: {detail}")
                retry |= errors.retry
            self.registered.update(p for values, p in pending.items() if values not in retry)
            pending = {values: pending[values] for values in retry if values in pending}
            if not pending:
                return
        raise PartitionRegistrationError(
            f"{self.database}.{table}: still failing after {self.attempts} attempts: "
            f"{sorted(list(v) for v in pending)}"
        )


def glue_catalog(the_stage: Stage | None = None, bucket: str | None = None) -> GlueCatalog | None:
    """The stage's Glue database, or None where `$LAKE_PARTITION_CATALOG` is `none`."""
    setting = os.environ.get(CATALOG_ENV, "glue")
    if setting == "none":
        return None
    if setting != "glue":
        raise ValueError(f"${CATALOG_ENV} is {setting!r}: use glue or none")
    s = the_stage or stage()
    return GlueCatalog(client("glue"), s.glue_database, bucket or s.lake_bucket)


def create_tables(glue: Any, the_stage: Stage) -> list[str]:
    """The stage's Glue database and lake tables as the CDK app makes them (for an emulator,
    whose CloudFormation skips Glue). Idempotent; returns the table names."""
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": the_stage.glue_database})
    names = []
    for table in _tables():
        with contextlib.suppress(glue.exceptions.AlreadyExistsException):
            glue.create_table(
                DatabaseName=the_stage.glue_database, TableInput=table_input(table, the_stage.lake_bucket)
            )
        names.append(table.name)
    return names
