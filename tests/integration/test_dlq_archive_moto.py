"""Archiving the DLQ into the lake's bad/ zone against moto: rows land in bad_rows, messages leave."""

import json

from typer.testing import CliRunner

from pipeline.aws import client
from pipeline.cli import app as cli_app
from pipeline.config import stage
from pipeline.lake.bad_rows import archive_dlq
from pipeline.lake.catalog import create_tables
from pipeline.lake.store import s3_lake
from pipeline.warehouse.engine import LocalWarehouse

T = 1764151200000  # 2025-11-26T10:00:00Z
DAY = 86_400_000


def bad_row(sequence: str, failed_at: int) -> dict[str, object]:
    return {
        "reason": "schema_violation",
        "detail": "payload.amount_minor: expected long",
        "field": "payload.amount_minor",
        "payload_base64": "e30=",
        "payload_truncated": False,
        "payload_sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "payload_bytes": 2,
        "stream": "rta-local-events-raw",
        "shard_id": "shardId-000000000000",
        "sequence_number": sequence,
        "subsequence_number": None,
        "partition_key": "pk",
        "arrival_time": failed_at - 100,
        "enricher_version": "1.0.0",
        "failed_at": failed_at,
    }


def test_old_bad_rows_move_to_the_lake_young_ones_stay(moto_endpoint: str) -> None:
    client("s3").create_bucket(Bucket=stage().lake_bucket)
    sqs = client("sqs")
    queue_url = sqs.create_queue(QueueName=stage().dlq_name)["QueueUrl"]
    for sequence, failed_at in [("1", T - 3 * DAY), ("2", T - 3 * DAY + 5), ("3", T - 2 * DAY), ("4", T)]:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(bad_row(sequence, failed_at)))
    lake = s3_lake()

    report = archive_dlq(sqs, queue_url, lake, now_ms=T, min_age_days=1)

    assert (report.archived, report.kept) == (3, 1)
    assert [key.rsplit("/", 2)[1] for key in report.objects] == [
        "failed_date=2025-11-23",
        "failed_date=2025-11-24",
    ]
    rows = (
        LocalWarehouse(lake)
        .query("SELECT sequence_number, reason, field, failed_date FROM bad_rows ORDER BY sequence_number")
        .rows
    )
    assert rows == [
        ("1", "schema_violation", "payload.amount_minor", "2025-11-23"),
        ("2", "schema_violation", "payload.amount_minor", "2025-11-23"),
        ("3", "schema_violation", "payload.amount_minor", "2025-11-24"),
    ]
    left = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["sequence_number"] for m in left] == ["4"]


def test_archive_dlq_command_registers_the_bad_rows_partitions(moto_endpoint: str) -> None:
    client("s3").create_bucket(Bucket=stage().lake_bucket)
    create_tables(client("glue"), stage())
    sqs = client("sqs")
    queue_url = sqs.create_queue(QueueName=stage().dlq_name)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(bad_row("1", T - 3 * DAY)))

    result = CliRunner().invoke(cli_app, ["lake", "archive-dlq"])

    assert result.exit_code == 0, result.output
    assert "archived 1 bad rows in 1 objects; 0 kept in the DLQ" in result.stdout
    registered = client("glue").get_partitions(DatabaseName=stage().glue_database, TableName="bad_rows")
    assert [(p["Values"], p["StorageDescriptor"]["Location"]) for p in registered["Partitions"]] == [
        (["2025-11-23"], f"s3://{stage().lake_bucket}/bad/failed_date=2025-11-23/")
    ]


def test_archive_dlq_command_says_how_to_register_later_when_glue_fails(moto_endpoint: str) -> None:
    client("s3").create_bucket(Bucket=stage().lake_bucket)  # no Glue tables
    sqs = client("sqs")
    queue_url = sqs.create_queue(QueueName=stage().dlq_name)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(bad_row("1", T - 3 * DAY)))

    result = CliRunner().invoke(cli_app, ["lake", "archive-dlq"])

    assert result.exit_code == 1
    assert "archived, but the partitions are not registered" in result.stderr
    assert "pipeline lake register-partitions" in result.stderr
    assert len(client("s3").list_objects_v2(Bucket=stage().lake_bucket)["Contents"]) == 1
