"""`pipeline produce`: push a realistic workload into a Kinesis stream and write its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.aws import client
from pipeline.config import stage
from pipeline.produce.kinesis import RECORD_TOO_LARGE, KinesisWriter, PutResult, ensure_stream
from pipeline.produce.run import batch_gc, plan, run
from pipeline.produce.workload import PartitionKeyStrategy, Workload, WorkloadConfig

console = Console(stderr=True)


def produce(
    stream: Annotated[str | None, typer.Option(help="Stream name (default: the stage's events-raw).")] = None,
    events: Annotated[
        int | None, typer.Option(help="User records to produce (default: rate x duration, else 10000).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Records per second (default: as fast as possible).")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Same seed (and --end-ms) = same records.")] = 42,
    manifest: Annotated[
        Path | None, typer.Option(help="Write the ground-truth manifest (JSON) here.")
    ] = None,
    end_ms: Annotated[
        int | None, typer.Option(help="Event-time span ends here, epoch ms (default: now).")
    ] = None,
    span_s: Annotated[
        float | None, typer.Option(help="Event-time span in seconds (default: max(900, events/50)).")
    ] = None,
    partition_key: Annotated[PartitionKeyStrategy, typer.Option(help="Partition key per event.")] = (
        PartitionKeyStrategy.USER
    ),
    aggregate: Annotated[bool, typer.Option(help="KPL-aggregate user records.")] = True,
    out_of_order: Annotated[float, typer.Option(help="Share delivered out of order.")] = 0.05,
    late: Annotated[float, typer.Option(help="Share beyond the allowed lateness.")] = 0.002,
    duplicates: Annotated[float, typer.Option(help="Share re-sent as a retrying producer would.")] = 0.01,
    bad: Annotated[float, typer.Option(help="Share malformed (every bad-row reason in turn).")] = 0.005,
    endpoint_url: Annotated[
        str | None, typer.Option(help="AWS endpoint (moto, LocalStack) (default: $AWS_ENDPOINT_URL).")
    ] = None,
    create_stream: Annotated[bool, typer.Option(help="Create the stream if missing (local runs).")] = False,
    shards: Annotated[
        int | None, typer.Option(help="Shards for --create-stream (default: the stage's).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Generate and write the manifest only; no Kinesis.")] = False,
) -> None:
    """Produce a seeded workload (sessions, funnels, sensors, logs, disorder on purpose) into Kinesis."""
    if events is None:
        events = int(rate * duration) if rate and duration else 10_000
    config = WorkloadConfig(
        events=events,
        seed=seed,
        end_ms=end_ms,
        span_s=span_s,
        out_of_order=out_of_order,
        late=late,
        duplicates=duplicates,
        bad=bad,
        partition_key=partition_key,
    )
    try:
        workload = Workload(config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if dry_run:
        with batch_gc():
            result = plan(workload)
        if manifest:
            result.write(manifest)
        console.print(
            f"planned {result.records['sent']} records, {result.events['distinct']} distinct events"
        )
        return

    the_stage = stage()
    stream_name = stream or the_stage.stream("events-raw")
    kinesis = client("kinesis", endpoint_url=endpoint_url)
    if create_stream:
        ensure_stream(kinesis, stream_name, shards or the_stage.shards.get("events-raw", 1))
    writer = KinesisWriter(kinesis, stream_name, aggregate=aggregate)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:,.0f}/s"),
        TextColumn("retried {task.fields[retried]} failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"-> {stream_name}", total=events, rate=0.0, retried=0, failed=0)
        retried = failed = 0

        def on_progress(n: int, result: PutResult) -> None:
            nonlocal retried, failed
            retried += result.retried
            failed += len(result.failed) - result.errors.get(RECORD_TOO_LARGE, 0)
            elapsed = progress.tasks[task].elapsed or 0.0
            done = progress.tasks[task].completed + n
            rate_now = done / elapsed if elapsed else 0.0
            progress.update(task, advance=n, rate=rate_now, retried=retried, failed=failed)

        with batch_gc():
            result, summary = run(workload, writer, rate=rate, duration_s=duration, on_progress=on_progress)
    if manifest:
        result.write(manifest)

    table = Table(title=f"pipeline produce -> {stream_name}", show_header=False)
    table.add_row("records offered", f"{summary.offered:,}")
    table.add_row("sent (accepted)", f"{summary.sent:,}")
    table.add_row("retried (entries)", f"{summary.retried:,}")
    table.add_row("failed", f"{summary.failed:,}" + (f"  {summary.errors}" if summary.failed else ""))
    table.add_row("refused oversize (planned)", f"{summary.rejected:,}")
    table.add_row("records/s", f"{summary.records_per_s:,.0f}")
    table.add_row(
        "distinct events (on time / late)", f"{result.events['on_time']:,} / {result.events['late']:,}"
    )
    table.add_row("duplicates sent", f"{result.duplicates['sent']:,}")
    table.add_row("bad rows sent", f"{sum(result.bad_rows.values()):,}")
    if manifest:
        table.add_row("manifest", str(manifest))
    console.print(table)
    if summary.failed:
        raise typer.Exit(1)
