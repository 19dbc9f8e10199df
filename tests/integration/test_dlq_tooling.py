"""`pipeline dlq list | show | redrive` against moto: reading never consumes, redrive deletes only what landed."""

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.aws import client
from pipeline.cli import app
from pipeline.config import stage
from pipeline.contract import BadRowReason
from pipeline.enrich import dlq
from pipeline.enrich.bad_rows import DeadLetterQueue, RecordOrigin, make_bad_row
from pipeline.local.resources import create_resources
from pipeline.produce.kinesis import KinesisWriter, read_stream

ORIGIN = RecordOrigin("rta-local-events-raw", "shardId-000000000000", "42", None, "pk-1", 1764150010123)


@pytest.fixture
def queue_url(moto_endpoint: str) -> str:
    resources = create_resources(stage("local"), moto_endpoint)
    rows = [
        make_bad_row(BadRowReason.UNPARSEABLE, "not json", None, b"\x00garbage-1", ORIGIN),
        make_bad_row(BadRowReason.UNPARSEABLE, "not json", None, b"\x00garbage-2", ORIGIN),
        make_bad_row(
            BadRowReason.SCHEMA_VIOLATION, "bad amount", "payload.amount_minor", b'{"a": 1}', ORIGIN
        ),
        make_bad_row(BadRowReason.OVERSIZE, "too big", None, b"x" * 400_000, ORIGIN),  # truncated in the DLQ
    ]
    assert DeadLetterQueue(client("sqs"), resources.dlq_url).send(rows) == []
    return resources.dlq_url


def _visible(queue_url: str) -> int:
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_list_and_show_do_not_consume(queue_url: str) -> None:
    sqs = client("sqs")
    for _ in range(2):
        assert dlq.count_by_reason(sqs, queue_url) == {"unparseable": 2, "schema_violation": 1, "oversize": 1}
        assert _visible(queue_url) == 4
    [shown] = dlq.sample(sqs, queue_url, reason="schema_violation")
    assert (shown.row["field"], shown.row["detail"]) == ("payload.amount_minor", "bad amount")
    assert _visible(queue_url) == 4


def test_cli_list_show_and_redrive(queue_url: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list"])
    assert listed.exit_code == 0, listed.output
    assert "unparseable" in listed.output and "total" in listed.output
    shown = runner.invoke(app, ["dlq", "show", "--reason", "unparseable", "--limit", "1"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("unparseable") == 1
    redriven = runner.invoke(app, ["dlq", "redrive", "--reason", "unparseable"])
    assert redriven.exit_code == 0, redriven.output
    assert json.loads(redriven.output)["redriven"] == 2
    assert dlq.count_by_reason(client("sqs"), queue_url) == {"schema_violation": 1, "oversize": 1}
    put = read_stream(client("kinesis"), stage("local").stream("events-raw"))
    assert sorted(u.data for u in put) == [b"\x00garbage-1", b"\x00garbage-2"]
    assert {u.partition_key for u in put} == {"pk-1"}


def test_redrive_skips_truncated_payloads_and_keeps_what_failed_to_put(queue_url: str) -> None:
    sqs = client("sqs")

    class RefusingWriter(KinesisWriter):
        def _put_batch(self, batch: Any) -> list[str | None]:
            return ["AccessDeniedException" if e.data == b"\x00garbage-2" else None for e in batch]

    writer = RefusingWriter(client("kinesis"), stage("local").stream("events-raw"), aggregate=False)
    report = dlq.redrive(sqs, queue_url, writer)
    assert (report.redriven, report.put_failed, report.truncated_skipped) == (2, 1, 1)
    assert report.put_errors == {"AccessDeniedException": 1}
    assert dlq.count_by_reason(sqs, queue_url) == {"unparseable": 1, "oversize": 1}
    assert _visible(queue_url) == 2
