"""`pipeline replay` (rebuild curated/metrics from raw/, Kappa reprocessing) and `pipeline lake ...`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table

from pipeline.aws import client
from pipeline.config import stage
from pipeline.lake.bad_rows import archive_dlq
from pipeline.lake.catalog import PartitionRegistrationError, glue_catalog, partition_of
from pipeline.lake.replay import replay as run_replay
from pipeline.lake.store import local_lake, s3_lake
from pipeline.lake.tables import lake_tables

app = typer.Typer(help="The S3 data lake: archive bad rows, register partitions.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _epoch_ms(value: str) -> int:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def replay(
    from_: Annotated[str, typer.Option("--from", help="Start, ISO 8601 (UTC unless an offset is given).")],
    to: Annotated[str, typer.Option("--to", help="End (exclusive), ISO 8601.")],
    lake_dir: Annotated[
        Path | None, typer.Option(help="A local directory laid out like the lake instead of S3.")
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="Lake bucket (default: the stage's).")] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep the Flink spool, output and log here (default: a temp dir).")
    ] = None,
) -> None:
    """Re-read raw/ for the range through the enricher and the Flink job in batch mode, and overwrite
    the affected curated/metrics partitions (whole UTC days). Running it twice changes nothing."""
    lake = local_lake(lake_dir) if lake_dir else s3_lake(bucket)
    catalog = None if lake_dir else glue_catalog(bucket=bucket)
    try:
        report = run_replay(lake, _epoch_ms(from_), _epoch_ms(to), work_dir, catalog)
    except (RuntimeError, ValueError) as exc:
        err.print(f"[red]replay failed:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table("", "value", title=f"replay {_iso(report.start_ms)} .. {_iso(report.end_ms)}")
    table.add_row("raw objects / records", f"{report.raw_objects} / {report.records}")
    table.add_row("enriched", str(report.enriched))
    table.add_row("bad rows", ", ".join(f"{k}={v}" for k, v in sorted(report.bad_rows.items())) or "0")
    table.add_row("late events (beyond allowed lateness)", str(report.late_events))
    table.add_row("metric rows written", str(report.metric_rows))
    table.add_row("partitions rewritten", "\n".join(report.partitions_written) or "none")
    table.add_row("partitions unchanged", "\n".join(report.partitions_unchanged) or "none")
    table.add_row("objects replaced", str(len(report.objects_deleted)))
    console.print(table)


@app.command("archive-dlq")
def archive(
    min_age_days: Annotated[
        float,
        typer.Option(help="Only bad rows that failed at least this long ago (younger stay for re-drive)."),
    ] = 0,
    bucket: Annotated[str | None, typer.Option(help="Lake bucket (default: the stage's).")] = None,
) -> None:
    """Move the DLQ's bad rows into the lake's bad/ zone (Parquet, table bad_rows)."""
    sqs = client("sqs")
    queue_url = sqs.get_queue_url(QueueName=stage().dlq_name)["QueueUrl"]
    now_ms = int(datetime.now(tz=UTC).timestamp() * 1000)
    report = archive_dlq(sqs, queue_url, s3_lake(bucket), now_ms, min_age_days)
    catalog = glue_catalog(bucket=bucket)
    if catalog is not None and report.objects:  # Spectrum reads registered partitions only
        try:
            catalog.register(partition_of(key) for key in report.objects)
        except (PartitionRegistrationError, ClientError) as exc:
            # The rows are safe in the lake already; only Spectrum's view of them is missing.
            err.print(f"[yellow]archived, but the partitions are not registered:[/] {exc}")
            err.print("run `pipeline lake register-partitions` once the Glue catalog is reachable")
            raise typer.Exit(1) from None
    console.print(
        f"archived {report.archived} bad rows in {len(report.objects)} objects; {report.kept} kept in the DLQ"
    )
    for key in report.objects:
        console.print(f"  {key}")


@app.command("register-partitions")
def register_partitions(
    bucket: Annotated[str | None, typer.Option(help="Lake bucket (default: the stage's).")] = None,
) -> None:
    """Register every partition that holds objects in the Glue catalog (for Redshift Spectrum).

    The lake writer registers what it writes; this backfills objects written before it did, or
    copied into the lake by hand. Idempotent."""
    catalog = glue_catalog(bucket=bucket)
    if catalog is None:
        err.print("[red]no Glue catalog here[/] ($LAKE_PARTITION_CATALOG is none)")
        raise typer.Exit(1)
    lake = s3_lake(bucket)
    for table in lake_tables():
        keys = lake.keys(table.prefix)
        partitions, stray = set(), []
        for key in keys:
            try:
                partitions.add(partition_of(key, [table]))
            except ValueError:
                stray.append(key)
        try:
            catalog.register(partitions)
        except PartitionRegistrationError as exc:
            err.print(f"[red]{table.name}:[/] {exc}")
            raise typer.Exit(1) from None
        console.print(f"{table.name}: {len(partitions)} partitions registered ({len(keys)} objects)")
        for key in stray[:5]:
            err.print(f"[yellow]{table.name}: not inside a partition, skipped:[/] {key}")
