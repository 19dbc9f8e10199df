"""Read, count and re-drive the bad rows in the SQS dead-letter queue without losing any.

SQS has no peek: reading a message hides it for the visibility timeout. Every read here hides the
messages for long enough to page through the queue once (so none is seen twice), then makes each
one visible again at once; only `redrive` deletes, and only messages whose payload was put back.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.enrich.bad_rows import original_payload
from pipeline.produce.kinesis import KinesisWriter

_BATCH = 10  # SQS receive / delete / change-visibility batch limit


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    receipt_handle: str
    receive_count: int
    row: dict[str, Any]


@dataclass
class RedriveReport:
    redriven: int = 0
    put_failed: int = 0
    truncated_skipped: int = 0
    other_reasons: int = 0
    put_errors: dict[str, int] = field(default_factory=dict)


def _parse(message: dict[str, Any]) -> DlqMessage:
    try:
        row = json.loads(message["Body"])
    except json.JSONDecodeError:
        row = {"reason": "<not a bad row>", "detail": message["Body"][:200]}
    if not isinstance(row, dict):
        row = {"reason": "<not a bad row>", "detail": str(row)[:200]}
    return DlqMessage(
        message["MessageId"],
        message["ReceiptHandle"],
        int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
        row,
    )


class Borrowed:
    """Messages received from the DLQ and hidden for now; `delete` removes some for good."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self.messages: list[DlqMessage] = []
        self.deleted: set[str] = set()

    def delete(self, messages: list[DlqMessage]) -> None:
        for i in range(0, len(messages), _BATCH):
            chunk = messages[i : i + _BATCH]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m.receipt_handle} for n, m in enumerate(chunk)],
            )
            self.deleted.update(m.message_id for m in chunk)

    def release(self) -> None:
        rest = [m for m in self.messages if m.message_id not in self.deleted]
        for i in range(0, len(rest), _BATCH):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                    for n, m in enumerate(rest[i : i + _BATCH])
                ],
            )


@contextmanager
def borrowed(sqs: Any, queue_url: str, visibility_timeout_s: int = 300) -> Iterator[Borrowed]:
    """Every message currently visible, hidden while the block runs; on exit, all that the block did
    not delete become visible again immediately."""
    batch = Borrowed(sqs, queue_url)
    seen: set[str] = set()
    empty_polls = 0
    try:
        # Short polling samples a subset of SQS hosts: an empty answer is not proof of an empty queue.
        while empty_polls < 3:
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=_BATCH,
                VisibilityTimeout=visibility_timeout_s,
                WaitTimeSeconds=0,
                AttributeNames=["ApproximateReceiveCount"],
            )
            # Only new messages count as progress: once the first ones come back into view (a large
            # queue outlasting the visibility timeout), re-reading them must not loop forever.
            fresh = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            empty_polls = 0 if fresh else empty_polls + 1
            for m in fresh:
                seen.add(m["MessageId"])
                batch.messages.append(_parse(m))
        yield batch
    finally:
        batch.release()


def count_by_reason(sqs: Any, queue_url: str) -> Counter[str]:
    with borrowed(sqs, queue_url) as batch:
        return Counter(str(m.row.get("reason")) for m in batch.messages)


def sample(sqs: Any, queue_url: str, reason: str | None = None, limit: int = 5) -> list[DlqMessage]:
    with borrowed(sqs, queue_url) as batch:
        matching = [m for m in batch.messages if reason is None or m.row.get("reason") == reason]
        return sorted(matching, key=lambda m: m.row.get("failed_at", 0))[:limit]


def redrive(sqs: Any, queue_url: str, writer: KinesisWriter, reason: str | None = None) -> RedriveReport:
    """Put the original payloads of the matching bad rows back on `writer`'s stream; delete exactly the
    messages whose put succeeded. Truncated payloads stay in the queue (the DLQ only has a prefix)."""
    report = RedriveReport()
    with borrowed(sqs, queue_url, visibility_timeout_s=300) as batch:
        chosen: list[DlqMessage] = []
        records: list[tuple[str, bytes]] = []
        for m in batch.messages:
            if reason is not None and m.row.get("reason") != reason:
                report.other_reasons += 1
                continue
            payload = original_payload(m.row) if "payload_base64" in m.row else None
            if payload is None:
                report.truncated_skipped += 1
                continue
            chosen.append(m)
            records.append((str(m.row.get("partition_key") or m.row["sequence_number"]), payload))
        result = writer.put(records) if records else None
        failed = set(result.failed) if result else set()
        done = [m for i, m in enumerate(chosen) if i not in failed]
        batch.delete(done)
        report.redriven = len(done)
        report.put_failed = len(failed)
        report.put_errors = dict(result.errors) if result else {}
    return report
