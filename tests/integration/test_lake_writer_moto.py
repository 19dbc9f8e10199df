"""The lake writer Lambda against moto S3 and Glue: retries overwrite, old partitions read with the new
schema, every partition written is registered in the Glue Data Catalog (what Redshift Spectrum reads)."""

import base64
import copy
import importlib.util
import json
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from pipeline.aws import client
from pipeline.cli import app as cli_app
from pipeline.config import REPO_ROOT, stage
from pipeline.contract import contract
from pipeline.lake.arrow_types import arrow_schema
from pipeline.lake.catalog import create_tables
from pipeline.lake.store import s3_lake
from pipeline.lake.writer import parquet_bytes
from pipeline.warehouse.engine import LocalWarehouse

T = 1764151200000  # 2025-11-26T10:00:00Z
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/rta-local-events-enriched"
CONTEXT = SimpleNamespace(
    function_name="rta-local-lake-writer",
    memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:rta-local-lake-writer",
    aws_request_id="req-1",
)


def page_view(event_id: str, event_time: int, **payload: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "page_view",
        "schema_version": 2,
        "event_time": event_time,
        "source": "web",
        "user_id": "u-1",
        "session_id": "s-1",
        "user_agent": None,
        "ip": None,
        "payload": {"url": "/home", "referrer": None, "title": None, **payload},
        "enrichment": {
            "arrival_time": event_time + 500,
            "event_time_skew_ms": 500,
            "writer_version": 2,
            "ua_family": None,
            "ua_major": None,
            "os_family": None,
            "device_family": None,
            "is_bot": False,
            "country": None,
            "asn": None,
            "as_name": None,
            "enricher_version": "test-1",
        },
    }


def lambda_event(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": row["event_id"],
                    "sequenceNumber": f"4959{i:052d}",
                    "data": base64.b64encode(json.dumps(row).encode()).decode(),
                    "approximateArrivalTimestamp": T / 1000,
                },
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:4959{i:052d}",
                "eventSourceARN": STREAM_ARN,
            }
            for i, row in enumerate(rows)
        ]
    }


def load_handler() -> Any:
    spec = importlib.util.spec_from_file_location(
        "lake_writer_handler", REPO_ROOT / "lambdas/lake_writer/handler.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def create_lake() -> None:
    """The lake bucket and the Glue tables (moto's CloudFormation skips Glue, as `pipeline up` knows)."""
    client("s3").create_bucket(Bucket=stage().lake_bucket)
    create_tables(client("glue"), stage())


def test_a_retried_batch_overwrites_the_same_object(moto_endpoint: str) -> None:
    s3 = client("s3")
    create_lake()
    handler = load_handler()
    event = lambda_event([page_view("e-1", T, load_time_ms=10), page_view("e-2", T + 1000, load_time_ms=20)])

    assert handler(event, CONTEXT) == {"batchItemFailures": []}
    first = s3.list_objects_v2(Bucket=stage().lake_bucket)["Contents"]
    body = s3.get_object(Bucket=stage().lake_bucket, Key=first[0]["Key"])["Body"].read()
    assert handler(event, CONTEXT) == {"batchItemFailures": []}
    second = s3.list_objects_v2(Bucket=stage().lake_bucket)["Contents"]

    assert [o["Key"] for o in second] == [
        "curated/events/event_type=page_view/event_date=2025-11-26/event_hour=10/"
        f"rta-local-events-enriched.shardId-000000000000.4959{0:052d}-4959{1:052d}.parquet"
    ]
    assert s3.get_object(Bucket=stage().lake_bucket, Key=second[0]["Key"])["Body"].read() == body
    assert [r["event_id"] for r in pq.read_table(pa.BufferReader(body)).to_pylist()] == ["e-1", "e-2"]


def test_v1_and_v2_partitions_read_together(moto_endpoint: str) -> None:
    create_lake()
    lake = s3_lake()
    # What the writer made while page_view v1 was the newest schema: no load_time_ms column at all.
    c = contract()
    v1_schema = copy.deepcopy(c.version("page_view", 1).definition)
    v1_schema["fields"].append({"name": "enrichment", "type": c.enrichment})
    v1_row = page_view("old-1", T - 86_400_000)
    v1_row["payload"] = {"url": "/old", "referrer": None, "title": "Old"}
    v1_key = "curated/events/event_type=page_view/event_date=2025-11-25/event_hour=10/old.parquet"
    lake.put(v1_key, parquet_bytes([v1_row], arrow_schema(v1_schema)))
    assert "load_time_ms" not in str(pq.read_schema(pa.BufferReader(lake.get(v1_key))))

    load_handler()(lambda_event([page_view("new-1", T, load_time_ms=812)]), CONTEXT)

    result = LocalWarehouse(lake).query(
        "SELECT event_id, payload.url, payload.load_time_ms, event_date FROM events_page_view ORDER BY event_time"
    )
    assert result.rows == [("old-1", "/old", None, "2025-11-25"), ("new-1", "/home", 812, "2025-11-26")]
    assert LocalWarehouse(lake).query("SELECT COUNT(*) FROM events").rows == [(2,)]


def add_to_cart(event_id: str, event_time: int) -> dict[str, Any]:
    row = page_view(event_id, event_time)
    payload = {"product_id": "sku-1", "quantity": 1, "unit_price_minor": 100, "currency": "EUR"}
    return {**row, "event_type": "add_to_cart", "schema_version": 1, "payload": payload}


def partitions(table: str) -> list[tuple[list[str], str]]:
    got = client("glue").get_partitions(DatabaseName=stage().glue_database, TableName=table)["Partitions"]
    return sorted((p["Values"], p["StorageDescriptor"]["Location"]) for p in got)


def test_every_partition_written_is_registered_once_in_glue(moto_endpoint: str) -> None:
    create_lake()
    handler = load_handler()
    hour = 3_600_000
    unknown = {**page_view("bad-1", T), "event_type": "no_such_type"}
    event = lambda_event(
        [
            page_view("p-1", T),
            page_view("p-2", T + 60_000),
            page_view("p-3", T + hour),
            add_to_cart("c-1", T + 30_000),
            unknown,
        ]
    )

    handler(event, CONTEXT)
    handler(event, CONTEXT)  # the mapping's retry: same objects, nothing new to register
    load_handler()(event, CONTEXT)  # a new Lambda instance: AlreadyExists from Glue is success

    bucket = f"s3://{stage().lake_bucket}"
    events = f"{bucket}/curated/events"
    assert partitions("events_page_view") == [
        (["2025-11-26", "10"], f"{events}/event_type=page_view/event_date=2025-11-26/event_hour=10/"),
        (["2025-11-26", "11"], f"{events}/event_type=page_view/event_date=2025-11-26/event_hour=11/"),
    ]
    assert partitions("events_add_to_cart") == [
        (["2025-11-26", "10"], f"{events}/event_type=add_to_cart/event_date=2025-11-26/event_hour=10/")
    ]
    assert partitions("bad_rows") == [(["2025-11-26"], f"{bucket}/bad/failed_date=2025-11-26/")]
    for table in ("events_click", "events_purchase", "events_app_log", "events_sensor_reading", "metrics"):
        assert partitions(table) == []
    # Each partition's storage descriptor is the table's, at the partition's prefix.
    glue = client("glue")
    table = glue.get_table(DatabaseName=stage().glue_database, Name="events_page_view")["Table"]
    [first, _] = glue.get_partitions(DatabaseName=stage().glue_database, TableName="events_page_view")[
        "Partitions"
    ]
    assert {**first["StorageDescriptor"], "Location": ""} == {**table["StorageDescriptor"], "Location": ""}
    # Every object written lies under a registered partition's location.
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=stage().lake_bucket)["Contents"]]
    locations = [
        loc for t in ("events_page_view", "events_add_to_cart", "bad_rows") for _, loc in partitions(t)
    ]
    assert len(keys) == 4
    assert all(sum(f"{bucket}/{key}".startswith(loc) for loc in locations) == 1 for key in keys)


def test_a_batch_fails_when_its_partitions_cannot_be_registered(moto_endpoint: str) -> None:
    client("s3").create_bucket(Bucket=stage().lake_bucket)  # no Glue tables: a misconfigured stage
    with pytest.raises(ClientError, match="EntityNotFoundException"):
        load_handler()(lambda_event([page_view("p-1", T)]), CONTEXT)


def test_register_partitions_backfills_objects_written_before_registration(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_lake()
    monkeypatch.setenv("LAKE_PARTITION_CATALOG", "none")  # a writer from before registration existed
    load_handler()(lambda_event([page_view("p-1", T), add_to_cart("c-1", T + 3_600_000)]), CONTEXT)
    s3 = client("s3")
    s3.put_object(Bucket=stage().lake_bucket, Key="curated/metrics/stray.parquet", Body=b"")
    assert partitions("events_page_view") == []
    monkeypatch.delenv("LAKE_PARTITION_CATALOG")

    runs = [CliRunner().invoke(cli_app, ["lake", "register-partitions"]) for _ in range(2)]

    assert [r.exit_code for r in runs] == [0, 0], runs[0].output
    assert "events_page_view: 1 partitions registered (1 objects)" in runs[0].stdout
    assert "metrics: 0 partitions registered (1 objects)" in runs[0].stdout
    assert "not inside a partition, skipped: curated/metrics/stray.parquet" in runs[0].stderr
    events = f"s3://{stage().lake_bucket}/curated/events"
    assert partitions("events_page_view") == [
        (["2025-11-26", "10"], f"{events}/event_type=page_view/event_date=2025-11-26/event_hour=10/")
    ]
    assert partitions("events_add_to_cart") == [
        (["2025-11-26", "11"], f"{events}/event_type=add_to_cart/event_date=2025-11-26/event_hour=11/")
    ]
