"""Archive the DLQ's bad rows into the lake's `bad/` zone (Parquet, table `bad_rows`).

SQS keeps a message for the queue's retention (`stage().dlq_retention_days`) only; the archive keeps
bad rows for good, payload included, so they can still be inspected or re-driven later. Messages are
deleted from the DLQ only after their object is written. The object name is derived from the ids of
the messages it holds, so an archive run that fails between put and delete rewrites the same object.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pipeline.enrich.dlq import DlqMessage, borrowed
from pipeline.lake import layout
from pipeline.lake.store import Lake
from pipeline.lake.tables import bad_rows_table
from pipeline.lake.writer import parquet_bytes

DAY_MS = 86_400_000


@dataclass
class ArchiveReport:
    archived: int = 0
    kept: int = 0  # younger than the minimum age: left in the DLQ for re-drive
    objects: list[str] = field(default_factory=list)


def _row(message: DlqMessage) -> dict[str, Any]:
    """The message as a bad_rows row; a body that is not a bad row is kept whole in `detail`."""
    defaults: dict[str, Any] = {
        "reason": "<not a bad row>",
        "detail": "",
        "payload_base64": "",
        "stream": "",
        "shard_id": "",
        "sequence_number": "",
        "arrival_time": 0,
        "enricher_version": "",
        "failed_at": 0,
    }
    return {**defaults, **{k: v for k, v in message.row.items() if v is not None or k not in defaults}}


def archive_dlq(sqs: Any, queue_url: str, lake: Lake, now_ms: int, min_age_days: float = 0) -> ArchiveReport:
    """Move every DLQ message whose bad row failed at least `min_age_days` ago into `bad/`."""
    report = ArchiveReport()
    schema = bad_rows_table().data_schema
    with borrowed(sqs, queue_url) as batch:
        by_partition: dict[str, list[DlqMessage]] = defaultdict(list)
        for message in batch.messages:
            row = _row(message)
            if now_ms - int(row["failed_at"]) < min_age_days * DAY_MS:
                report.kept += 1
                continue
            by_partition[layout.bad_partition(int(row["failed_at"]))].append(message)
        for partition, messages in sorted(by_partition.items()):
            messages.sort(key=lambda m: m.message_id)
            digest = hashlib.sha256("\n".join(m.message_id for m in messages).encode()).hexdigest()[:32]
            key = f"{partition}dlq-{digest}.parquet"
            lake.put(key, parquet_bytes([_row(m) for m in messages], schema))
            batch.delete(messages)
            report.objects.append(key)
            report.archived += len(messages)
    return report
