"""`pipeline warehouse ddl` and `pipeline query`: the warehouse SQL, generated and run locally."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.lake.store import local_lake, s3_lake
from pipeline.warehouse.ddl import WAREHOUSE_DIR, generated_files, write_generated
from pipeline.warehouse.engine import LocalWarehouse, QueryResult

app = typer.Typer(
    help="Warehouse SQL: Athena DDL and the events views generated from the Avro schemas.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


class SqlDialect(StrEnum):
    athena = "athena"
    redshift = "redshift"


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("ddl")
def ddl(
    check: Annotated[bool, typer.Option(help="Only check that the committed files are up to date.")] = False,
) -> None:
    """Write warehouse/athena/tables/*.sql, athena/views/events.sql and redshift/20_events.sql from schemas/."""
    if check:
        stale = [str(rel) for rel, text in generated_files().items() if _read(WAREHOUSE_DIR / rel) != text]
        if stale:
            err.print(f"[red]out of date (run `pipeline warehouse ddl`):[/] {', '.join(stale)}")
            raise typer.Exit(1)
        console.print("warehouse DDL is up to date")
        return
    for path in write_generated():
        console.print(f"wrote {path.relative_to(WAREHOUSE_DIR.parent)}")


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def query(
    sql: Annotated[str, typer.Argument(help="SQL in the chosen dialect; tables and views as named on AWS.")],
    dialect: Annotated[SqlDialect, typer.Option(help="Dialect the SQL is written in.")] = SqlDialect.athena,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    lake_dir: Annotated[
        Path | None, typer.Option(help="Read a local directory laid out like the lake instead of S3.")
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="Lake bucket (default: the stage's).")] = None,
) -> None:
    """Run Athena or Redshift SQL locally: DuckDB over the lake's Parquet (S3 at $AWS_ENDPOINT_URL)."""
    lake = local_lake(lake_dir) if lake_dir else s3_lake(bucket)
    try:
        result = LocalWarehouse(lake).query(sql, dialect.value)
    except Exception as exc:  # SQL errors from sqlglot or DuckDB: one clear line, not a traceback
        err.print(f"[red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(1) from None
    _print(result, output)


def _print(result: QueryResult, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(result.records(), default=str) + "\n")
    elif output is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
