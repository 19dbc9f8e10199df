"""The enricher behind the local event source mapping, on a produced workload, killed and restarted."""

import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.aws import client
from pipeline.config import stage
from pipeline.contract import BadRowReason
from pipeline.local.event_source_mapping import KinesisEventSourceMapping, load_handler
from pipeline.local.resources import create_resources
from pipeline.produce.kinesis import KinesisWriter, read_stream
from pipeline.produce.workload import RecordKind, Workload, WorkloadConfig

REPO = Path(__file__).resolve().parents[2]
EVENTS = 600


def _produce(stream: str) -> tuple[set[str], Counter[str], int]:
    """Half the records in small KPL aggregates, then half plain; (valid event ids, bad reasons, user records)."""
    workload = Workload(WorkloadConfig(events=EVENTS, seed=7, bad=0.05, duplicates=0.0, late=0.0))
    records = [r for r in workload if r.reason is not BadRowReason.OVERSIZE]  # Kinesis refuses those
    kinesis = client("kinesis")
    plain = KinesisWriter(kinesis, stream, aggregate=False)
    aggregated = KinesisWriter(kinesis, stream, aggregate=True)
    aggregated.aggregate_max_bytes = 4096  # ~10 events per aggregate: many Kinesis records, many batches
    half = len(records) // 2
    for writer, part in ((aggregated, records[:half]), (plain, records[half:])):
        result = writer.put([(r.partition_key, r.data) for r in part])
        assert result.failed == []
    valid = {r.event["event_id"] for r in records if r.kind is RecordKind.EVENT and r.event}
    bad = Counter(str(r.reason) for r in records if r.kind is RecordKind.BAD)
    assert len(valid) + sum(bad.values()) == len(records)
    return valid, bad, len(records)


def _dlq_rows(queue_url: str) -> list[dict[str, Any]]:
    sqs = client("sqs")
    rows: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300)
        messages = got.get("Messages", [])
        if not messages:
            return rows
        rows += [json.loads(m["Body"]) for m in messages]


def _last_sequence_numbers(stream: str) -> dict[str, str]:
    kinesis = client("kinesis")
    out = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
        if records:
            out[shard["ShardId"]] = records[-1]["SequenceNumber"]
    return out


def test_enriched_plus_bad_rows_equal_input_across_a_kill_and_restart(
    moto_endpoint: str, tmp_path: Path
) -> None:
    the_stage = stage("local")
    resources = create_resources(the_stage, moto_endpoint)
    raw, enriched_stream = the_stage.stream("events-raw"), the_stage.stream("events-enriched")
    valid_ids, bad_reasons, user_records = _produce(raw)
    last = _last_sequence_numbers(raw)
    checkpoints = tmp_path / "checkpoints"
    ready = tmp_path / "ready.json"

    # 1. The mapping as a process, killed by PID (SIGKILL) right after its 2nd batch was delivered.
    env = {**os.environ, "KILL_AFTER_INVOCATIONS": "2", "KILL_READY_FILE": str(ready)}
    argv = [
        sys.executable, "-m", "pipeline", "mapping", "run",
        "--handler", str(REPO / "tests/integration/kill_point_handler.py") + ":handler",
        "--stream", "events-raw", "--settings", "enricher_mapping", "--function", "enricher",
        "--checkpoint-dir", str(checkpoints), "--batch-size", "10", "--batching-window-s", "0",
        "--poll-interval-s", "0.05",
    ]  # fmt: skip
    log = open(tmp_path / "mapping.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, (tmp_path / "mapping.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the mapping never reached its 2nd batch"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        log.close()
    frozen = json.loads(ready.read_text())
    assert frozen["failures"] == []
    before_restart = {
        p.stem: json.loads(p.read_text())["sequence_number"] for p in (checkpoints / raw).glob("*.json")
    }
    assert before_restart, "nothing was checkpointed before the kill"
    assert before_restart != last, "the kill was not mid-stream"

    # 2. Restarted (in process this time): resumes from the checkpoints and runs until caught up.
    settings = dataclasses.replace(the_stage.enricher_mapping, batch_size=10, max_batching_window_s=0)
    handler = load_handler(str(REPO / "lambdas/enricher/handler.py") + ":handler")
    mapping = KinesisEventSourceMapping(
        handler, raw, settings, checkpoints, "rta-local-enricher",
        on_failure_queue_url=resources.on_failure_queue_url, poll_interval_s=0.05,
    )  # fmt: skip
    mapping.start()
    try:
        mapping.wait_caught_up(120)
    finally:
        mapping.stop()
    assert all(s.records_discarded == 0 and s.function_errors == 0 for s in mapping.stats.values())
    after = {p.stem: json.loads(p.read_text())["sequence_number"] for p in (checkpoints / raw).glob("*.json")}
    assert after == last

    # 3. Exact accounting: every event once, except the one delivered-but-uncheckpointed batch.
    enriched = [json.loads(u.data) for u in read_stream(client("kinesis"), enriched_stream)]
    rows = _dlq_rows(resources.dlq_url)
    replayed = frozen["user_records"]
    assert replayed > 0
    assert len(enriched) + len(rows) - replayed == user_records
    assert {e["event_id"] for e in enriched} == valid_ids
    distinct_bad = {(r["shard_id"], r["sequence_number"], r["subsequence_number"]): r for r in rows}
    assert Counter(r["reason"] for r in distinct_bad.values()) == bad_reasons
    assert all(base64.b64decode(r["payload_base64"]) for r in rows)
    assert _dlq_rows(resource_url := resources.on_failure_queue_url) == [], resource_url
