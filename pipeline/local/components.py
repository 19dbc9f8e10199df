"""Runs one local stand-in as its own process: `python -m pipeline.local.components <name>`.

`pipeline up` starts one process per component and records its PID; each publishes its counters to
`<state>/status/<name>.json`. Lambda-backed components run the very handler files deployed to AWS,
driven by the local event source mapping with the settings the CDK stack gives the real mapping.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from pipeline.aws import client
from pipeline.config import REPO_ROOT, EventSourceMapping, Stage, stage
from pipeline.local.event_source_mapping import (
    KinesisEventSourceMapping,
    ShardStats,
    StreamRecord,
    is_transient,
    load_handler,
)
from pipeline.local.flink_bridge import MetricsBridge, SpoolBridge, access_times_work, taken_by_job
from pipeline.local.status import StatusPublisher, state_dir

log = logging.getLogger("pipeline.local")
FLINK_PYTHON = REPO_ROOT / ".venv-flink" / "bin" / "python"
FLINK_LOCAL_PROPERTIES = REPO_ROOT / "flink" / "application_properties.local.json"
SPOOL_FILE_SPACING_S = 3.0  # three times the job's 1 s spool directory scan


@dataclass(frozen=True)
class MappedFunction:
    """A Lambda function and the stream its event source mapping reads (AWS: stacks/processing.py)."""

    handler: str
    stream: str  # logical stream name
    function: str  # logical function name
    settings: Callable[[Stage], EventSourceMapping]


MAPPED_FUNCTIONS: dict[str, MappedFunction] = {
    "enricher": MappedFunction(
        "lambdas/enricher/handler.py:handler", "events-raw", "enricher", lambda s: s.enricher_mapping
    ),
    # Firehose's stand-in: the same buffering role, driven by the same mapping code.
    "raw-archiver": MappedFunction(
        "pipeline.lake.raw:archive_handler", "events-raw", "raw-archiver", lambda s: s.lake_writer_mapping
    ),
    "lake-writer-events": MappedFunction(
        "lambdas/lake_writer/handler.py:handler",
        "events-enriched",
        "lake-writer",
        lambda s: s.lake_writer_mapping,
    ),
    "lake-writer-metrics": MappedFunction(
        "lambdas/lake_writer/handler.py:handler", "metrics", "lake-writer", lambda s: s.lake_writer_mapping
    ),
}
# Processes that are not Lambda functions: the Flink job (own venv) and its Kinesis bridges.
OTHER_COMPONENTS = ("flink-bridge", "flink-job")
COMPONENTS = (*MAPPED_FUNCTIONS, *OTHER_COMPONENTS)


def run_mapped_function(name: str, the_stage: Stage, stop: threading.Event) -> None:
    spec = MAPPED_FUNCTIONS[name]
    publisher = StatusPublisher(name)
    last_arrival: dict[str, float] = {}

    def on_batch(shard_id: str, records: list[StreamRecord], stats: ShardStats) -> None:
        last_arrival[shard_id] = records[-1].arrival

    on_failure_url = client("sqs").get_queue_url(QueueName=the_stage.on_failure_queue_name)["QueueUrl"]
    mapping = KinesisEventSourceMapping(
        load_handler(str(REPO_ROOT / spec.handler) if spec.handler.startswith("lambdas/") else spec.handler),
        the_stage.stream(spec.stream),
        spec.settings(the_stage),
        state_dir() / "checkpoints" / name,
        the_stage.function(spec.function),
        on_failure_queue_url=on_failure_url,
        on_batch=on_batch,
    )
    mapping.start()
    try:
        while not stop.wait(0.5):
            stats = list(mapping.stats.values())
            crashed = [s.last_error for s in stats if s.crashed]
            behind = [
                time.time() - last_arrival[shard]
                for shard, s in mapping.stats.items()
                if not s.caught_up and shard in last_arrival
            ]
            publisher.set(
                records_in=sum(s.records_read for s in stats),
                records_out=sum(s.records_succeeded for s in stats),
                lag_ms=0 if mapping.caught_up() else int(max(behind, default=0) * 1000),
                last_error=next((s.last_error for s in stats if s.last_error), None),
                extra={
                    "caught_up": mapping.caught_up(),
                    "discarded": sum(s.records_discarded for s in stats),
                    "function_errors": sum(s.function_errors for s in stats),
                },
            )
            if crashed:
                raise RuntimeError(f"{name}: shard poller died: {crashed}")
    finally:
        mapping.stop()
        publisher.flush(force=True)


def flink_dirs() -> dict[str, Path]:
    base = state_dir() / "flink"
    return {name: base / name for name in ("spool", "metrics", "late", "bridge", "checkpoints")}


def flink_job_argv(the_stage: Stage) -> list[str]:
    """The job in its own venv with the shipped local properties, its directories under the state dir."""
    dirs = flink_dirs()
    groups = {g["PropertyGroupId"]: g["PropertyMap"] for g in json.loads(FLINK_LOCAL_PROPERTIES.read_text())}
    groups["pipeline"]["stage"] = the_stage.name
    groups["job"].update({"checkpoint.dir": str(dirs["checkpoints"]), "checkpoint.restore": "latest"})
    groups["source"]["path"] = str(dirs["spool"])
    groups["sink.metrics"]["path"] = str(dirs["metrics"])
    groups["sink.late"]["path"] = str(dirs["late"])
    properties = state_dir() / "flink" / "application_properties.json"
    properties.parent.mkdir(parents=True, exist_ok=True)
    properties.write_text(
        json.dumps([{"PropertyGroupId": k, "PropertyMap": v} for k, v in groups.items()], indent=1)
    )
    return [str(FLINK_PYTHON), str(REPO_ROOT / "flink" / "main.py"), "--properties", str(properties)]


def run_flink_bridge(the_stage: Stage, stop: threading.Event) -> None:
    """events-enriched -> spool files, committed metric files -> the metrics stream (exactly once)."""
    dirs = flink_dirs()
    kinesis = client("kinesis")
    spool = SpoolBridge(kinesis, the_stage.stream("events-enriched"), dirs["spool"], dirs["bridge"])
    metrics = MetricsBridge(kinesis, the_stage.stream("metrics"), dirs["metrics"], dirs["bridge"])
    publisher = StatusPublisher("flink-bridge")
    last_spool_poll = 0.0
    spool_idle = False
    # Flink's file source takes the files one directory scan finds in listing order, not name order,
    # and a later file read first would push the watermark past the earlier one's events. So the
    # bridge hands over one file at a time: the next only once the job has opened the previous one
    # (its access time moved); where reads do not update access times, one file per 3 scans.
    handover = access_times_work(dirs["spool"])
    if not handover:
        log.warning(
            "reads do not update access times here: spacing spool files %ss apart", SPOOL_FILE_SPACING_S
        )
    while not stop.is_set():
        if handover:
            ready = spool.newest is None or taken_by_job(spool.newest)
        else:
            ready = time.monotonic() - last_spool_poll >= SPOOL_FILE_SPACING_S
        try:
            if ready:
                spooled = spool.poll_once()
                last_spool_poll = time.monotonic()
                spool_idle = spooled.records == 0
                publisher.add(records_in=spooled.lines, bad_rows=spooled.rejected)
            put = metrics.poll_once()
        except ClientError as exc:
            if not is_transient(exc):
                raise
            # Both bridges commit after the write they guard: a retry neither loses nor repeats rows.
            log.warning("flink-bridge: %s; retrying", exc)
            publisher.set(last_error=str(exc)[:200])
            stop.wait(0.5)
            continue
        publisher.add(records_out=put.records)
        idle = spool_idle and put.records == 0
        publisher.set(
            lag_ms=0 if idle else None,
            extra={"caught_up": idle, "spool_files": len(list(dirs["spool"].glob("spool-*")))},
        )
        stop.wait(0.5 if idle else 0.1)
    publisher.flush(force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("component", choices=COMPONENTS)
    parser.add_argument("--stage", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    the_stage = stage(args.stage)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.component in MAPPED_FUNCTIONS:
        run_mapped_function(args.component, the_stage, stop)
    elif args.component == "flink-bridge":
        run_flink_bridge(the_stage, stop)
    else:  # flink-job: replace this process, so its PID is the job's and signals reach it directly
        os.environ["PIPELINE_FLINK_STATUS_FILE"] = str(state_dir() / "status" / "flink-job.json")
        os.execv(str(FLINK_PYTHON), flink_job_argv(the_stage))
    return 0


if __name__ == "__main__":
    sys.exit(main())
