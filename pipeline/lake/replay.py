"""Kappa replay: rebuild `curated/metrics/` for a time range from `raw/`, through the same code.

raw/ (arrival order) -> the enricher's own batch code (`pipeline.enrich.batch.EnrichBatch`, with the
enriched stream and the DLQ replaced by in-memory collectors) -> the Flink job (`flink/main.py`) in
batch mode, which runs the streaming operators over a bounded source, so dedup, watermarks and late
classification behave as they did live -> the affected `window_date=` partitions of curated/metrics
are overwritten by one object each.

The range is widened to whole UTC days (a metrics partition is a day: it is rewritten whole). raw/ is
read from the dedup TTL plus lateness before it (the live job's state at the start: dedup keys and
watermark) until the allowed lateness after it (late arrivals for the last windows), and only
windows starting inside the range are written. Replayed rows are deterministic (sorted, `emitted_at` = window
end), so a second replay of the same range rewrites the same bytes: it changes nothing.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import REPO_ROOT, stage
from pipeline.enrich.bad_rows import DeadLetterQueue
from pipeline.enrich.batch import EnrichBatch
from pipeline.enrich.enrichment import Pseudonymiser
from pipeline.enrich.pseudonym_key import pseudonym_key
from pipeline.lake import layout
from pipeline.lake.catalog import GlueCatalog, partition_of
from pipeline.lake.raw import RawRecord, raw_keys, read_raw_object
from pipeline.lake.store import Lake
from pipeline.lake.tables import metrics_table
from pipeline.lake.writer import parquet_bytes
from pipeline.produce.kinesis import PutResult

DAY_MS = 86_400_000
FLINK_PYTHON = Path(os.environ.get("PIPELINE_FLINK_PYTHON", REPO_ROOT / ".venv-flink/bin/python"))
FLINK_MAIN = REPO_ROOT / "flink/main.py"
FLINK_LOCAL_PROPERTIES = REPO_ROOT / "flink/application_properties.local.json"
REPLAY_OBJECT = "replay.parquet"
_OP_ORDER = {"retract": 0, "insert": 1}


@dataclass
class ReplayReport:
    start_ms: int  # the widened range: whole UTC days
    end_ms: int
    raw_objects: int = 0
    records: int = 0
    enriched: int = 0
    bad_rows: Counter[str] = field(default_factory=Counter)
    metric_rows: int = 0
    late_events: int = 0
    partitions_written: list[str] = field(default_factory=list)
    partitions_unchanged: list[str] = field(default_factory=list)
    objects_deleted: list[str] = field(default_factory=list)


class _EnrichedCollector:
    """Stands in for the enriched stream: keeps what the enricher would have put."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def put(self, records: Sequence[tuple[str, bytes]]) -> PutResult:
        self.lines.extend(data for _, data in records)
        return PutResult(sent=len(records), retried=0)


class _BadRowCollector(DeadLetterQueue):
    """Stands in for the DLQ: these bad rows reached the DLQ live already; replay only counts them."""

    def __init__(self) -> None:
        super().__init__(sqs=None, queue_url="replay")
        self.reasons: Counter[str] = Counter()

    def send(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        self.reasons.update(str(row["reason"]) for row in rows)
        return []


def widen_to_days(start_ms: int, end_ms: int) -> tuple[int, int]:
    if end_ms <= start_ms:
        raise ValueError("--to must be after --from")
    return start_ms - start_ms % DAY_MS, end_ms + (-end_ms % DAY_MS)


def lambda_record(record: RawRecord) -> dict[str, Any]:
    """The record as Lambda handed it to the enricher live. A raw/ line that held no record (its
    metadata is empty) is named by its origin, so its bad row says where it came from."""
    sequence_number = record.sequence_number or record.origin
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(record.data).decode(),
            "approximateArrivalTimestamp": record.arrival_ms / 1000,
        },
        "eventID": f"{record.shard_id or 'replay'}:{sequence_number}",
        "eventSourceARN": f"arn:aws:kinesis:replay:000000000000:stream/{stage().stream('events-raw')}",
    }


def enrich_records(records: list[RawRecord], report: ReplayReport) -> list[bytes]:
    """The enricher's exact per-record path (decode, future check, enrich), in input order."""
    out, bad = _EnrichedCollector(), _BadRowCollector()
    batch = EnrichBatch(out, bad, Pseudonymiser(pseudonym_key()), stage().future_tolerance_s)
    for record in records:
        batch.add(lambda_record(record))
    batch.deliver()
    report.enriched += len(out.lines)
    report.bad_rows.update(bad.reasons)
    return out.lines


def run_flink_batch(events: list[bytes], work_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """(metric changelog rows, late events) of the Flink job in batch mode over `events`."""
    spool, metrics_dir, late_dir = work_dir / "spool", work_dir / "metrics", work_dir / "late"
    for directory in (spool, metrics_dir, late_dir):
        directory.mkdir(parents=True, exist_ok=True)
    (spool / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in events))
    flink = stage().flink
    groups = {g["PropertyGroupId"]: g["PropertyMap"] for g in json.loads(FLINK_LOCAL_PROPERTIES.read_text())}
    groups["job"].update(
        {
            "runtime.mode": "batch",
            "checkpoint.dir": str(work_dir / "checkpoints"),
            "checkpoint.restore": "none",
            "watermark.out-of-orderness.s": str(flink.out_of_orderness_s),
            "window.allowed-lateness.s": str(flink.allowed_lateness_s),
            "dedup.ttl.s": str(flink.dedup_ttl_s),
            "parallelism": "1",
        }
    )
    groups["source"] = {"connector": "files", "path": str(spool)}
    groups["sink.metrics"] = {"connector": "files", "path": str(metrics_dir)}
    groups["sink.late"] = {"path": str(late_dir)}
    properties = work_dir / "application_properties.json"
    properties.write_text(json.dumps([{"PropertyGroupId": g, "PropertyMap": m} for g, m in groups.items()]))
    log = work_dir / "flink.log"
    with log.open("wb") as out:
        finished = subprocess.run(
            [str(FLINK_PYTHON), str(FLINK_MAIN), "--properties", str(properties)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            timeout=900,
            check=False,
        )
    if finished.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the Flink batch job failed (exit {finished.returncode}); {log}:\n{tail}")
    return committed_rows(metrics_dir), len(committed_rows(late_dir))


def committed_rows(directory: Path) -> list[dict[str, Any]]:
    """Rows of committed part files (in-progress ones start with a dot)."""
    rows: list[dict[str, Any]] = []
    for part in sorted(directory.rglob("*")):
        if part.is_file() and not part.name.startswith("."):
            rows.extend(json.loads(line) for line in part.read_text().splitlines() if line.strip())
    return rows


def _canonical(row: dict[str, Any]) -> dict[str, Any]:
    # The processing time of a firing differs per run; the window end is when it could first fire.
    return {**row, "emitted_at": row["window_end"]}


def _sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    dims = json.dumps(row["dimensions"], sort_keys=True)
    return (row["metric"], row["window_start"], row["window_end"], dims, row["version"], _OP_ORDER[row["op"]])


def overwrite_metrics(lake: Lake, rows: list[dict[str, Any]], report: ReplayReport) -> None:
    """One object per window_date in the range; every other object of those partitions is removed.

    Partitions the replay produced nothing for are left alone: an empty replay (raw/ expired, say)
    must never wipe metrics."""
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for row in sorted((_canonical(r) for r in rows), key=_sort_key):
        if report.start_ms <= row["window_start"] < report.end_ms:
            by_partition.setdefault(layout.metrics_partition(row["window_start"]), []).append(row)
    schema = metrics_table().data_schema
    for partition, partition_rows in sorted(by_partition.items()):
        key = partition + REPLAY_OBJECT
        body = parquet_bytes(partition_rows, schema)
        existing = lake.keys(partition)
        stale = [k for k in existing if k != key]
        if key in existing and not stale and lake.get(key) == body:
            report.partitions_unchanged.append(partition)
            continue
        lake.put(key, body)  # before deleting, so readers never see an empty partition
        lake.delete(stale)
        report.partitions_written.append(partition)
        report.objects_deleted.extend(stale)
        report.metric_rows += len(partition_rows)


def replay(
    lake: Lake,
    start_ms: int,
    end_ms: int,
    work_dir: Path | None = None,
    catalog: GlueCatalog | None = None,
) -> ReplayReport:
    start, end = widen_to_days(start_ms, end_ms)
    report = ReplayReport(start, end)
    flink = stage().flink
    lateness_ms = (flink.allowed_lateness_s + flink.out_of_orderness_s) * 1000
    # Lead-in: what the live job had in state when the range began (dedup keys, the watermark), so
    # duplicates and late events right after the start are judged as they were live.
    read_from = start - flink.dedup_ttl_s * 1000 - lateness_ms
    records: list[RawRecord] = []
    for key in raw_keys(lake, read_from, end + lateness_ms):
        records.extend(read_raw_object(key, lake.get(key)))
        report.raw_objects += 1
    report.records = len(records)
    events = enrich_records(records, report)
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        rows, report.late_events = run_flink_batch(events, work_dir or Path(tmp))
    overwrite_metrics(lake, rows, report)
    if catalog is not None:  # a day the live run never wrote is new to Spectrum too
        catalog.register(partition_of(p + REPLAY_OBJECT) for p in report.partitions_written)
    return report
