"""Creates the `local` stage's resources on an emulator, with the names and settings the CDK app uses."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipeline.aws import client
from pipeline.config import STREAMS, Stage
from pipeline.lake.catalog import create_tables


@dataclass(frozen=True)
class LocalResources:
    streams: dict[str, str]  # logical -> physical name
    dlq_url: str
    on_failure_queue_url: str
    bucket: str
    glue_tables: list[str]  # in the stage's Glue database; none where the emulator has no Glue

    def as_json(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "dlq_url": self.dlq_url,
            "on_failure_queue_url": self.on_failure_queue_url,
            "bucket": self.bucket,
            "glue_tables": self.glue_tables,
        }


def _ensure_stream(kinesis: Any, name: str, shards: int) -> None:
    if name not in kinesis.list_streams()["StreamNames"]:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    for _ in range(100):
        if (
            kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE"
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"stream {name} not ACTIVE after 10 s")


def create_resources(stage: Stage, endpoint_url: str, glue: bool = True) -> LocalResources:
    """Idempotent: safe to call against an emulator that already has some of them. `glue=False`
    for an emulator without Glue (LocalStack's free edition)."""
    kinesis = client("kinesis", endpoint_url)
    for logical in STREAMS:
        _ensure_stream(kinesis, stage.stream(logical), stage.shards[logical])
    sqs = client("sqs", endpoint_url)
    retention = str(stage.dlq_retention_days * 86400)
    dlq_url = sqs.create_queue(QueueName=stage.dlq_name, Attributes={"MessageRetentionPeriod": retention})[
        "QueueUrl"
    ]
    failures_url = sqs.create_queue(
        QueueName=stage.on_failure_queue_name, Attributes={"MessageRetentionPeriod": retention}
    )["QueueUrl"]
    s3 = client("s3", endpoint_url)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if stage.lake_bucket not in existing:
        s3.create_bucket(Bucket=stage.lake_bucket)
    # moto's CloudFormation skips AWS::Glue::*: create the lake tables the lake writer registers into.
    tables = create_tables(client("glue", endpoint_url), stage) if glue else []
    return LocalResources(
        streams={logical: stage.stream(logical) for logical in STREAMS},
        dlq_url=dlq_url,
        on_failure_queue_url=failures_url,
        bucket=stage.lake_bucket,
        glue_tables=tables,
    )
