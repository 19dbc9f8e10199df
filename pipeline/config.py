"""Stage settings, read from `cdk.json` context: the CDK stacks and the local stand-ins share them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = Path(os.environ.get("PIPELINE_CDK_JSON", REPO_ROOT / "cdk.json"))

StartingPosition = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
STREAMS = ("events-raw", "events-enriched", "metrics")


@dataclass(frozen=True)
class EventSourceMapping:
    """Settings of a Kinesis -> Lambda event source mapping (AWS names, seconds)."""

    batch_size: int
    max_batching_window_s: int
    starting_position: StartingPosition
    parallelization_factor: int
    retry_attempts: int
    bisect_on_error: bool
    max_record_age_s: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class FlinkSettings:
    out_of_orderness_s: int
    allowed_lateness_s: int
    idle_timeout_s: int
    dedup_ttl_s: int
    parallelism: int
    checkpoint_interval_s: int
    autoscaling: bool


@dataclass(frozen=True)
class Stage:
    name: str
    prefix: str
    kinesis_mode: Literal["ON_DEMAND", "PROVISIONED"]
    retention_hours: int
    shards: dict[str, int]
    enricher_mapping: EventSourceMapping
    lake_writer_mapping: EventSourceMapping
    future_tolerance_s: int
    pseudonym_key_secret: str
    flink: FlinkSettings
    dlq_retention_days: int
    dlq_max_receive_count: int

    def stream(self, logical: str) -> str:
        """Physical name of one of `STREAMS`."""
        if logical not in STREAMS:
            raise KeyError(f"unknown stream {logical!r}; known: {', '.join(STREAMS)}")
        return f"{self.prefix}-{logical}"

    @property
    def dlq_name(self) -> str:
        return f"{self.prefix}-events-dlq"

    @property
    def on_failure_queue_name(self) -> str:
        return f"{self.prefix}-mapping-failures"

    @property
    def lake_bucket(self) -> str:
        return f"{self.prefix}-lake"

    @property
    def glue_database(self) -> str:
        return self.prefix.replace("-", "_")

    @property
    def schema_registry(self) -> str:
        return f"{self.prefix}-events"

    @property
    def dlq_redrive_name(self) -> str:
        """Where DLQ messages go after `dlq_max_receive_count` failed re-drives: kept for a human."""
        return f"{self.prefix}-events-dlq-redrive"

    @property
    def access_log_bucket(self) -> str:
        return f"{self.prefix}-access-logs"

    @property
    def raw_archive_stream(self) -> str:
        """The Firehose delivery stream archiving `events-raw` into the lake's `raw/` zone."""
        return f"{self.prefix}-raw-archive"

    def function(self, logical: str) -> str:
        """Physical name of a Lambda function: `enricher` or `lake-writer`."""
        return f"{self.prefix}-{logical}"

    @property
    def flink_application(self) -> str:
        return f"{self.prefix}-analytics"

    @property
    def athena_workgroup(self) -> str:
        return self.prefix

    @property
    def redshift_namespace(self) -> str:
        return self.prefix

    @property
    def alarm_topic(self) -> str:
        return f"{self.prefix}-alarms"


def _context() -> dict[str, Any]:
    return dict(json.loads(CDK_JSON.read_text())["context"])


@cache
def stage(name: str | None = None) -> Stage:
    """The settings of stage `name` (default: $PIPELINE_STAGE, else the `stage` in cdk.json)."""
    ctx = _context()
    name = name or os.environ.get("PIPELINE_STAGE") or ctx["stage"]
    try:
        raw = ctx["stages"][name]
    except KeyError:
        raise KeyError(f"no stage {name!r} in {CDK_JSON}; known: {', '.join(ctx['stages'])}") from None
    return Stage(
        name=name,
        prefix=raw["prefix"],
        kinesis_mode=raw["kinesis"]["mode"],
        retention_hours=raw["kinesis"]["retention_hours"],
        shards=dict(raw["kinesis"]["shards"]),
        enricher_mapping=EventSourceMapping(**raw["enricher_mapping"]),
        lake_writer_mapping=EventSourceMapping(**raw["lake_writer_mapping"]),
        future_tolerance_s=raw["enricher"]["future_tolerance_s"],
        pseudonym_key_secret=raw["enricher"]["pseudonym_key_secret"],
        flink=FlinkSettings(**raw["flink"]),
        dlq_retention_days=raw["dlq"]["retention_days"],
        dlq_max_receive_count=raw["dlq"]["max_receive_count"],
    )
