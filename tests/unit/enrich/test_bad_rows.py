import base64
import json
from typing import Any

from pipeline.contract import BadRowReason
from pipeline.enrich.bad_rows import (
    SQS_MAX_MESSAGE_BYTES,
    DeadLetterQueue,
    RecordOrigin,
    bad_row_message,
    make_bad_row,
    original_payload,
)

ORIGIN = RecordOrigin("s", "shardId-000000000000", "7", 3, "pk", 1_000)


def test_a_row_that_fits_is_sent_whole() -> None:
    row = make_bad_row(BadRowReason.UNPARSEABLE, "d\u00e9tail \U0001f600", None, b"\xffabc", ORIGIN)
    body = bad_row_message(row)
    assert body.isascii()  # SQS refuses some code points: everything non-ASCII is escaped
    assert json.loads(body) == row
    assert original_payload(json.loads(body)) == b"\xffabc"


def test_an_oversize_payload_is_truncated_flagged_and_fingerprinted() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    row = make_bad_row(BadRowReason.OVERSIZE, "too big", None, payload, ORIGIN)
    body = bad_row_message(row)
    assert len(body) <= SQS_MAX_MESSAGE_BYTES - 512
    sent = json.loads(body)
    assert sent["payload_truncated"] is True
    assert payload.startswith(base64.b64decode(sent["payload_base64"]))
    assert sent["payload_bytes"] == len(payload)
    assert sent["payload_sha256"] == row["payload_sha256"]
    assert original_payload(sent) is None


class Sqs:
    def __init__(self, fail_first: int = 0, sender_fault: bool = False) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.fail_first = fail_first
        self.sender_fault = sender_fault

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(Entries)
        if self.sender_fault:
            return {
                "Failed": [
                    {"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents"} for e in Entries
                ]
            }
        if len(self.requests) <= self.fail_first:
            return {
                "Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in Entries]
            }
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_batches_of_ten_within_256_kib() -> None:
    small = [make_bad_row(BadRowReason.UNPARSEABLE, "x", None, b"x", ORIGIN) for _ in range(23)]
    big = [make_bad_row(BadRowReason.OVERSIZE, "x", None, b"x" * 150_000, ORIGIN) for _ in range(3)]
    sqs = Sqs()
    assert DeadLetterQueue(sqs, "q", base_backoff_s=0).send(small + big) == []
    assert [len(r) for r in sqs.requests] == [10, 10, 4, 1, 1]  # 3 small + 1 big fit in 256 KiB
    assert all(sum(len(e["MessageBody"]) for e in r) <= SQS_MAX_MESSAGE_BYTES for r in sqs.requests)


def test_failed_entries_are_retried_and_sender_faults_are_not() -> None:
    rows = [make_bad_row(BadRowReason.UNPARSEABLE, "x", None, b"x", ORIGIN) for _ in range(3)]
    sqs = Sqs(fail_first=2)
    assert DeadLetterQueue(sqs, "q", base_backoff_s=0).send(rows) == []
    assert len(sqs.requests) == 3
    sqs = Sqs(sender_fault=True)
    assert DeadLetterQueue(sqs, "q", base_backoff_s=0).send(rows) == [0, 1, 2]
    assert len(sqs.requests) == 1
