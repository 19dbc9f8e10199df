"""Typed bad rows (docs/data-contracts.md "Bad row") and the SQS dead-letter queue they go to."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pipeline.contract import BadRowReason
from pipeline.enrich.enrichment import ENRICHER_VERSION

# SQS limits: 256 KiB per message and per SendMessageBatch request, 10 entries per request.
SQS_MAX_MESSAGE_BYTES = 262_144
SQS_MAX_BATCH_ENTRIES = 10
# Room for the `reason` message attribute and the batch entry's own framing.
_ATTRIBUTE_ALLOWANCE = 512
_RETRYABLE_ERRORS = frozenset(
    {"ThrottlingException", "RequestThrottled", "ServiceUnavailable", "InternalError", "KmsThrottled"}
)


@dataclass(frozen=True)
class RecordOrigin:
    """Where a user record came from: enough to find it again in the source stream."""

    stream: str
    shard_id: str
    sequence_number: str
    subsequence_number: int | None  # position inside a KPL-aggregated record
    partition_key: str
    arrival_ms: int


def make_bad_row(
    reason: BadRowReason, detail: str, field: str | None, payload: bytes, origin: RecordOrigin
) -> dict[str, Any]:
    return {
        "reason": str(reason),
        "detail": detail,
        "field": field,
        "payload_base64": base64.b64encode(payload).decode("ascii"),
        "payload_truncated": False,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_bytes": len(payload),
        "stream": origin.stream,
        "shard_id": origin.shard_id,
        "sequence_number": origin.sequence_number,
        "subsequence_number": origin.subsequence_number,
        "partition_key": origin.partition_key,
        "arrival_time": origin.arrival_ms,
        "enricher_version": ENRICHER_VERSION,
        "failed_at": int(time.time() * 1000),
    }


def bad_row_message(row: dict[str, Any]) -> str:
    """The SQS body: JSON with every non-ASCII character escaped (SQS rejects some code points), the
    payload's base64 cut to fit 256 KiB, flagged, with the full payload's sha256 and size kept."""
    body = json.dumps(row, ensure_ascii=True)
    limit = SQS_MAX_MESSAGE_BYTES - _ATTRIBUTE_ALLOWANCE
    if len(body) <= limit:
        return body
    encoded = row["payload_base64"]
    keep = max(0, len(encoded) - (len(body) - limit)) // 4 * 4  # whole base64 quanta only
    return json.dumps({**row, "payload_base64": encoded[:keep], "payload_truncated": True}, ensure_ascii=True)


def original_payload(row: dict[str, Any]) -> bytes | None:
    """The original record bytes, or None when the DLQ only holds a truncated prefix."""
    if row.get("payload_truncated"):
        return None
    return base64.b64decode(row["payload_base64"])


class DeadLetterQueue:
    """Sends bad rows with SendMessageBatch, retrying throttled and failed entries with backoff."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        max_attempts: int = 6,
        base_backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self._max_attempts = max_attempts
        self._base_backoff_s = base_backoff_s
        self._max_backoff_s = max_backoff_s

    def send(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Indices of `rows` still not sent after every attempt (empty when all landed)."""
        bodies = [bad_row_message(row) for row in rows]
        pending = list(range(len(rows)))
        given_up: list[int] = []
        for attempt in range(self._max_attempts):
            if attempt:
                time.sleep(
                    min(self._max_backoff_s, self._base_backoff_s * 2**attempt) * random.uniform(0.5, 1)
                )
            retry: list[int] = []
            for chunk in _chunks(pending, bodies):
                again, permanent = self._send_chunk(chunk, bodies, rows)
                retry.extend(again)
                given_up.extend(permanent)
            pending = retry
            if not pending:
                break
        return sorted(pending + given_up)

    def _send_chunk(
        self, chunk: list[int], bodies: list[str], rows: Sequence[dict[str, Any]]
    ) -> tuple[list[int], list[int]]:
        """(entries worth retrying, entries SQS will never accept)."""
        entries = [
            {
                "Id": str(i),
                "MessageBody": bodies[i],
                "MessageAttributes": {"reason": {"DataType": "String", "StringValue": rows[i]["reason"]}},
            }
            for i in chunk
        ]
        try:
            response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _RETRYABLE_ERRORS:
                return chunk, []
            return [], chunk
        retry: list[int] = []
        permanent: list[int] = []
        for entry in response.get("Failed", []):
            (permanent if entry.get("SenderFault") else retry).append(int(entry["Id"]))
        return retry, permanent


def _chunks(indices: list[int], bodies: list[str]) -> list[list[int]]:
    """Up to 10 entries and 256 KiB of bodies per request."""
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in indices:
        entry_size = len(bodies[i]) + _ATTRIBUTE_ALLOWANCE
        if current and (len(current) == SQS_MAX_BATCH_ENTRIES or size + entry_size > SQS_MAX_MESSAGE_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(i)
        size += entry_size
    if current:
        chunks.append(current)
    return chunks
