"""`pipeline mapping run`: the local Kinesis event source mapping as a process (stops on SIGTERM)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

from pipeline.aws import client
from pipeline.config import EventSourceMapping, stage
from pipeline.local.event_source_mapping import run_mapping

app = typer.Typer(help="Local stand-in for Lambda's Kinesis event source mapping.", no_args_is_help=True)


@app.command("run")
def run(
    handler: Annotated[str, typer.Option(help="module:function or path/to/handler.py:function")],
    stream: Annotated[str, typer.Option(help="Logical stream name: events-raw, events-enriched, metrics.")],
    settings: Annotated[
        str, typer.Option(help="Mapping settings in cdk.json: enricher_mapping, lake_writer_mapping.")
    ],
    function: Annotated[str, typer.Option(help="Logical function name (enricher, lake-writer).")],
    checkpoint_dir: Annotated[Path, typer.Option(help="Per-shard checkpoint files go here.")],
    batch_size: Annotated[int | None, typer.Option(help="Override the configured batch size.")] = None,
    batching_window_s: Annotated[int | None, typer.Option(help="Override the batching window.")] = None,
    on_failure_queue: Annotated[
        str | None, typer.Option(help="On-failure destination queue name (default: the stage's).")
    ] = None,
    poll_interval_s: Annotated[float, typer.Option(help="Sleep between empty GetRecords.")] = 0.2,
) -> None:
    """Poll every shard of the stream and invoke the handler in process, as Lambda's mapping would;
    checkpoints survive restarts, SIGTERM stops after the batch in flight."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    the_stage = stage()
    mapping: EventSourceMapping = getattr(the_stage, settings)
    if batch_size is not None:
        mapping = dataclasses.replace(mapping, batch_size=batch_size)
    if batching_window_s is not None:
        mapping = dataclasses.replace(mapping, max_batching_window_s=batching_window_s)
    queue_url = client("sqs").get_queue_url(QueueName=on_failure_queue or the_stage.on_failure_queue_name)[
        "QueueUrl"
    ]
    run_mapping(
        handler,
        the_stage.stream(stream),
        mapping,
        checkpoint_dir,
        the_stage.function(function),
        on_failure_queue_url=queue_url,
        poll_interval_s=poll_interval_s,
    )
