"""Enricher throughput, handler path in process: Powertools processor, de-aggregation, decode + upcast,
enrichment, aggregation and the PutRecords / SendMessageBatch calls (stubbed: no network).

Batches of 1,000 Kinesis records from the workload generator (UA, IP, wire-format and version variety,
0.5 % bad rows). One warm-up batch (a warm Lambda), then distinct batches. Prints ONE JSON line: CPU
events/s (per core: the handler is single-threaded) and the ratio to a bare `orjson.loads` loop over
the JSON form of the same events.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "bench")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from pipeline.contract import DecodeError, WireFormat, decode  # noqa: E402
from pipeline.enrich.bad_rows import DeadLetterQueue  # noqa: E402
from pipeline.enrich.enrichment import Pseudonymiser  # noqa: E402
from pipeline.enrich.pseudonym_key import DEV_PSEUDONYM_KEY  # noqa: E402
from pipeline.enrich.service import Enricher  # noqa: E402
from pipeline.local.event_source_mapping import MappingIdentity, StreamRecord, lambda_event, load_handler  # noqa: E402
from pipeline.produce.kinesis import KinesisWriter  # noqa: E402
from pipeline.produce.workload import Workload, WorkloadConfig  # noqa: E402

BATCH = 1_000
BATCHES = int(os.environ.get("BENCH_BATCHES", "8"))
# Passes of BATCHES distinct batches each; the best pass is reported. This machine's CPU speed swings
# by up to 1.7x from one second to the next (shared host), so the fastest pass is the one least
# disturbed; every pass is distinct work of the same workload, so no pass benefits from another's caches
# beyond what a warm Lambda's caches would hold.
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
TARGET = 50_000


class StubKinesis:
    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "FailedRecordCount": 0,
            "Records": [{"SequenceNumber": "1", "ShardId": "shardId-0"}] * len(Records),
        }


class StubSqs:
    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


class Context:
    function_name = "bench-enricher"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-enricher"
    memory_limit_in_mb = 1024
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def build() -> tuple[Any, list[dict[str, Any]]]:
    """The real handler module wired to stub clients, and BATCHES * REPEAT + 1 Lambda events."""
    workload = Workload(WorkloadConfig(events=BATCH * (BATCHES * REPEAT + 1), seed=11, duplicates=0.0))
    records = [r for r in workload if len(r.data) < 1_000_000]
    identity = MappingIdentity(
        "bench-enricher", "us-east-1", "123456789012", "arn:aws:kinesis:us-east-1:123456789012:stream/bench"
    )
    now = time.time()
    events = []
    for b in range(BATCHES * REPEAT + 1):
        chunk = records[b * BATCH : (b + 1) * BATCH]
        stream_records = [
            StreamRecord(str(b * BATCH + i), r.partition_key, r.data, now) for i, r in enumerate(chunk)
        ]
        events.append(lambda_event(stream_records, "shardId-000000000000", identity))

    module_handler = load_handler(str(REPO / "lambdas/enricher/handler.py") + ":handler")
    module = sys.modules[module_handler.__module__]
    enricher = Enricher(
        KinesisWriter(StubKinesis(), "bench-enriched", aggregate=True),
        DeadLetterQueue(StubSqs(), "bench-dlq"),
        Pseudonymiser(DEV_PSEUDONYM_KEY),
        future_tolerance_s=300,
    )
    module.enricher = lambda: enricher  # type: ignore[attr-defined]
    return module_handler, events


def _json_payloads(event: dict[str, Any]) -> tuple[list[bytes], Counter[str]]:
    """The JSON form of each record's event (as sent, or re-encoded from Avro): the orjson baseline."""
    payloads, formats = [], Counter[str]()
    for r in event["Records"]:
        raw = base64.b64decode(r["kinesis"]["data"])
        try:
            decoded = decode(raw)
        except DecodeError:
            formats["bad"] += 1
            payloads.append(raw if raw[:1] == b"{" else b"{}")
            continue
        formats[decoded.wire_format.value] += 1
        payloads.append(raw if decoded.wire_format is WireFormat.JSON else orjson.dumps(decoded.event))
    return payloads, formats


def main() -> None:
    handler, events = build()
    baselines = [_json_payloads(e) for e in events[1:]]
    formats = sum((f for _, f in baselines[:BATCHES]), Counter[str]())
    passes: list[tuple[float, float, int]] = []  # (handler CPU s, orjson CPU s, events) per pass
    sink = io.StringIO()  # EMF blobs (Metrics prints them)
    with contextlib.redirect_stdout(sink):
        handler(events[0], Context())  # warm-up: a warm Lambda has loaded geo data and caches
        for p in range(REPEAT):
            handler_s = baseline_s = 0.0
            count = 0
            group = range(1 + p * BATCHES, 1 + (p + 1) * BATCHES)
            # Handler and baseline alternate batch by batch: on a shared machine both see the same load.
            for event, (payloads, _) in zip(
                (events[i] for i in group), (baselines[i - 1] for i in group), strict=True
            ):
                cpu = time.process_time()
                response = handler(event, Context())
                handler_s += time.process_time() - cpu
                assert response == {"batchItemFailures": []}, response
                cpu = time.process_time()
                for _ in range(5):
                    for payload in payloads:
                        with contextlib.suppress(orjson.JSONDecodeError):
                            orjson.loads(payload)
                baseline_s += (time.process_time() - cpu) / 5
                count += len(event["Records"])
            passes.append((handler_s, baseline_s, count))
    rates = [n / h for h, _, n in passes]
    best = max(range(REPEAT), key=lambda i: rates[i])
    handler_s, baseline_s, count = passes[best]
    rate = rates[best]
    ratio = statistics.median(b / h for h, b, _ in passes)
    print(
        json.dumps(
            {
                "bench": "enricher",
                "events": count,
                "batch_size": BATCH,
                "events_per_s_per_core": round(rate),
                "all_passes_per_s": [round(r) for r in rates],
                "orjson_loads_per_s": round(count / baseline_s),
                "ratio_to_orjson_loads": round(ratio, 4),
                "target_events_per_s_per_core": TARGET,
                "meets_target": rate >= TARGET,
                "wire_formats": dict(formats),
                "load_average_1m": round(os.getloadavg()[0], 1),
                "note": f"CPU time of this process (single-threaded handler); best of {REPEAT} passes "
                f"of {BATCHES} distinct batches; ratio: median over passes",
            }
        )
    )


if __name__ == "__main__":
    main()
