"""The local SQL engine: DuckDB over the lake's Parquet, with Athena or Redshift SQL transpiled by sqlglot.

Tables are pyarrow datasets (S3 through `pyarrow.fs`, since DuckDB's httpfs cannot be installed here),
registered under their Athena names with the table's full schema, so files written before a column
existed read it as null. The views are the shipped `warehouse/athena/views/*.sql` files themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow.dataset as ds
import sqlglot
from sqlglot import exp

from pipeline.lake.store import Lake
from pipeline.lake.tables import LakeTable, lake_tables
from pipeline.warehouse.ddl import ATHENA_VIEWS, WAREHOUSE_DIR

Dialect = Literal["athena", "redshift", "duckdb"]


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def table_dataset(lake: Lake, table: LakeTable) -> ds.Dataset:
    """Every Parquet file of `table`, read with the newest schema and Hive partition columns."""
    files = [lake.path(key) for key in lake.keys(table.prefix) if key.endswith(".parquet")]
    return ds.dataset(
        files,
        schema=table.schema,
        format="parquet",
        filesystem=lake.fs,
        partitioning=ds.partitioning(table.partition_schema, flavor="hive"),
        partition_base_dir=lake.path(table.prefix.rstrip("/")),
    )


def to_duckdb(sql: str, dialect: Dialect) -> list[str]:
    """Each statement of `sql` in DuckDB's dialect; views become TEMP views over the registered tables."""
    statements = []
    for tree in sqlglot.parse(sql, read=dialect):
        if tree is None:
            continue
        if isinstance(tree, exp.Create) and tree.kind == "VIEW":
            # Registered Arrow datasets are temporary objects: a view over them must be temporary too.
            tree.set("properties", exp.Properties(expressions=[exp.TemporaryProperty()]))
        statements.append(tree.sql(dialect="duckdb"))
    return statements


class LocalWarehouse:
    """One DuckDB connection with every lake table and shipped view, under the names Athena uses."""

    def __init__(
        self, lake: Lake, views_dir: Path = WAREHOUSE_DIR / ATHENA_VIEWS, snapshot: bool = False
    ) -> None:
        """`snapshot`: read every table into memory once (many queries over a lake that no longer
        changes, as a reconciliation runs); otherwise each query scans the objects again."""
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        for table in lake_tables():
            dataset = table_dataset(lake, table)
            self.con.register(table.name, dataset.to_table() if snapshot else dataset)
        self._create_views(sorted(views_dir.glob("*.sql")))

    def _create_views(self, files: list[Path]) -> None:
        # Views may read views: create in dependency order by retrying what failed until nothing changes.
        pending = {f: to_duckdb(f.read_text(), "athena") for f in files}
        while pending:
            errors: dict[Path, str] = {}
            for file, statements in pending.items():
                try:
                    for statement in statements:
                        self.con.execute(statement)
                except duckdb.Error as exc:
                    errors[file] = str(exc)
            if len(errors) == len(pending):
                detail = "; ".join(f"{f.name}: {e}" for f, e in errors.items())
                raise RuntimeError(f"views that do not run locally: {detail}")
            pending = {f: pending[f] for f in errors}

    def query(self, sql: str, dialect: Dialect = "athena") -> QueryResult:
        """Run `sql` (one or more statements); returns the result of the last one."""
        statements = to_duckdb(sql, dialect)
        if not statements:
            raise ValueError("no SQL statement given")
        for statement in statements[:-1]:
            self.con.execute(statement)
        relation = self.con.execute(statements[-1])
        columns = [d[0] for d in relation.description or []]
        return QueryResult(columns, relation.fetchall() if columns else [])
