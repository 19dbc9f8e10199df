"""Producer throughput without the network: ONE JSON line.

`events_per_s_per_core`: the seeded workload (sessions, sensors, logs, disorder, bad rows, the default
mix of wire formats and schema versions) generated, encoded, KPL-aggregated and batched by
`KinesisWriter` against a stub client that accepts everything: CPU time of this single-threaded
process, so per core, with the collector tuned as `pipeline produce` tunes it (`batch_gc`;
`default_gc_per_s`: one pass with Python's default thresholds). `full_run_per_s` adds what `pipeline produce` does on top: the ground-truth
manifest tally (`pipeline.produce.run.run`). Best of BENCH_REPEAT passes (one seed each): the machine is shared, and
the best pass is the one least disturbed by other processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.produce.kinesis import KinesisWriter
from pipeline.produce.run import MAX_CHUNK, batch_gc, run
from pipeline.produce.workload import Workload, WorkloadConfig

EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
TARGET = 100_000
END_MS = 1_764_150_000_000


class StubKinesis:
    def __init__(self) -> None:
        self.entries = 0

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries += len(Records)
        return {
            "FailedRecordCount": 0,
            "Records": [{"SequenceNumber": "1", "ShardId": "shardId-0"}] * len(Records),
        }


def produce_pass(config: WorkloadConfig) -> tuple[float, int, int]:
    """CPU seconds, user records and Kinesis records for generate + encode + aggregate + batch."""
    stub = StubKinesis()
    writer = KinesisWriter(stub, "bench", aggregate=True)
    cpu = time.process_time()
    records = iter(Workload(config))
    offered = 0
    while chunk := list(islice(records, MAX_CHUNK)):
        writer.put([(r.partition_key, r.data) for r in chunk])
        offered += len(chunk)
    return time.process_time() - cpu, offered, stub.entries


def full_pass(config: WorkloadConfig) -> float:
    cpu = time.process_time()
    run(Workload(config), KinesisWriter(StubKinesis(), "bench", aggregate=True))
    return time.process_time() - cpu


def main() -> None:
    config = WorkloadConfig(events=EVENTS, seed=1, end_ms=END_MS)
    produce_pass(WorkloadConfig(events=5_000, seed=0, end_ms=END_MS))  # warm imports and schema parsing
    # One seed per pass: a pass never replays strings an earlier pass left in the encoder's caches.
    configs = [replace(config, seed=1 + i) for i in range(REPEAT)]
    with batch_gc():  # as `pipeline produce` runs
        passes = [produce_pass(c) for c in configs]
        full = min(full_pass(c) for c in configs)
    default_gc = produce_pass(replace(config, seed=REPEAT + 1))[0]
    cpu, offered, entries = max(passes, key=lambda p: p[1] / p[0])
    per_core = offered / cpu
    print(
        json.dumps(
            {
                "bench": "producer",
                "events": offered,
                "events_per_s_per_core": round(per_core),
                "target_per_core": TARGET,
                "meets_target": per_core >= TARGET,
                "all_passes_per_s": [round(n / c) for c, n, _ in passes],
                "full_run_per_s": round(offered / full),
                "default_gc_per_s": round(offered / default_gc),
                "kinesis_records": entries,
                "events_per_kinesis_record": round(offered / entries, 1),
                "load_average_1m": round(os.getloadavg()[0], 1),
                "cpus": os.cpu_count(),
                # Which interpreter build: a PGO+LTO distribution build runs this 15-20% faster than
                # a plain source build (pyenv's default); the Makefile prefers the former.
                "python": f"{sys.version.split()[0]} {sys.base_prefix}",
            }
        )
    )


if __name__ == "__main__":
    main()
