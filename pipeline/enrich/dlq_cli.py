"""`pipeline dlq list | show | redrive`: the enricher's dead-letter queue, read without losing messages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from pipeline.aws import client
from pipeline.config import stage
from pipeline.enrich import dlq
from pipeline.produce.kinesis import KinesisWriter

app = typer.Typer(help="Dead-letter queue of the enricher: counts, samples, re-drive.", no_args_is_help=True)
console = Console()

QueueOption = Annotated[str | None, typer.Option("--queue", help="Queue name (default: the stage's DLQ).")]


def _queue_url(sqs: object, queue: str | None) -> str:
    return str(sqs.get_queue_url(QueueName=queue or stage().dlq_name)["QueueUrl"])  # type: ignore[attr-defined]


def _ms(value: object) -> str:
    if not isinstance(value, int):
        return "-"
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds")


@app.command("list")
def list_reasons(queue: QueueOption = None) -> None:
    """Bad rows currently in the DLQ, counted by reason."""
    sqs = client("sqs")
    counts = dlq.count_by_reason(sqs, _queue_url(sqs, queue))
    table = Table("reason", "bad rows", title=f"{queue or stage().dlq_name}")
    for reason, n in counts.most_common():
        table.add_row(reason, str(n))
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    console.print(table)


@app.command("show")
def show(
    reason: Annotated[str | None, typer.Option(help="Only bad rows of this reason.")] = None,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 5,
    queue: QueueOption = None,
) -> None:
    """A few bad rows, oldest first, with their payload decoded where it is text."""
    sqs = client("sqs")
    for m in dlq.sample(sqs, _queue_url(sqs, queue), reason, limit):
        row = m.row
        payload = base64.b64decode(row.get("payload_base64", ""))
        text = payload[:600].decode("utf-8", errors="replace")
        grid = Table.grid(padding=(0, 2))
        grid.add_row("detail", str(row.get("detail")))
        grid.add_row("field", str(row.get("field")))
        grid.add_row(
            "from",
            f"{row.get('stream')} {row.get('shard_id')} seq {row.get('sequence_number')}"
            f" sub {row.get('subsequence_number')}",
        )
        grid.add_row("arrived / failed", f"{_ms(row.get('arrival_time'))} / {_ms(row.get('failed_at'))}")
        grid.add_row(
            "payload",
            f"{row.get('payload_bytes', len(payload))} bytes"
            f"{' (truncated in the DLQ)' if row.get('payload_truncated') else ''}, sha256 {row.get('payload_sha256')}",
        )
        grid.add_row("", text + (" ..." if len(payload) > 600 else ""))
        grid.add_row("enricher", f"{row.get('enricher_version')}, received {m.receive_count}x")
        console.print(Panel(grid, title=f"[red]{row.get('reason')}[/] {m.message_id}", expand=False))


@app.command("redrive")
def redrive(
    reason: Annotated[str | None, typer.Option(help="Only bad rows of this reason.")] = None,
    stream: Annotated[
        str | None, typer.Option(help="Target stream (default: the stage's events-raw).")
    ] = None,
    queue: QueueOption = None,
) -> None:
    """Re-send the original payloads to events-raw; each message is deleted only after its put succeeded."""
    sqs = client("sqs")
    writer = KinesisWriter(client("kinesis"), stream or stage().stream("events-raw"), aggregate=False)
    report = dlq.redrive(sqs, _queue_url(sqs, queue), writer, reason)
    console.print_json(json.dumps(report.__dict__))
    if report.put_failed:
        raise typer.Exit(1)
