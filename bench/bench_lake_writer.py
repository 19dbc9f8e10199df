"""Lake writer throughput in process: one Lambda batch of 5,000 enriched events (the local stage's
batch size) -> de-aggregation, validation, partitioning, Parquet encoding (no S3 calls).

Prints ONE JSON line: events/s on one core and the Parquet bytes per event.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.lake.writer import kinesis_batch, lake_objects  # noqa: E402

T = 1764151200000
EXAMPLES = json.loads((REPO / "tests/fixtures/events/examples.json").read_text())
ENRICHMENT = {
    "arrival_time": T,
    "event_time_skew_ms": 500,
    "writer_version": 1,
    "ua_family": "Chrome",
    "ua_major": "120",
    "os_family": "Linux",
    "device_family": "Other",
    "is_bot": False,
    "country": "GB",
    "asn": 1234,
    "as_name": "Example AS",
    "enricher_version": "bench",
}
PAGE_VIEW = {**EXAMPLES["page_view.v2"], "schema_version": 2, "enrichment": ENRICHMENT}


def batch(size: int) -> dict[str, object]:
    arn = "arn:aws:kinesis:us-east-1:000000000000:stream/rta-local-events-enriched"
    records = []
    for i in range(size):
        row = {**PAGE_VIEW, "event_id": str(uuid.UUID(int=i)), "event_time": T + i * 100}
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": row["event_id"],
                    "sequenceNumber": str(10**20 + i),
                    "data": base64.b64encode(json.dumps(row).encode()).decode(),
                    "approximateArrivalTimestamp": T / 1000,
                },
                "eventID": f"shardId-000000000000:{10**20 + i}",
                "eventSourceARN": arn,
            }
        )
    return {"Records": records}


def main() -> None:
    size, rounds = 5000, 3
    event = batch(size)
    lake_objects(kinesis_batch(event))  # warm-up: schema parsing and caches, as in a warm Lambda
    started = time.process_time()
    for _ in range(rounds):
        objects = lake_objects(kinesis_batch(event))
    elapsed = time.process_time() - started
    parquet_bytes = sum(len(body) for body in objects.values())
    print(
        json.dumps(
            {
                "bench": "lake_writer",
                "events_per_s_per_core": round(size * rounds / elapsed),
                "objects_per_batch": len(objects),
                "parquet_bytes_per_event": round(parquet_bytes / size, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
