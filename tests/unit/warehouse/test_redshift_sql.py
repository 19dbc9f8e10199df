"""The Redshift SQL custom resource's logic against a stubbed Data API client (botocore's Stubber
checks every request and response against the redshift-data service model)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from pipeline.aws import client
from pipeline.config import REPO_ROOT
from pipeline.warehouse import redshift_sql
from pipeline.warehouse.redshift_sql import (
    MAX_BATCH_STATEMENTS,
    RedshiftSqlError,
    handle,
    is_complete,
    on_event,
    resource_properties,
    statements_hash,
)

BATCH_ID = "5c1e0a2e-7b7f-4f4e-9a43-0d6c1c1f2b3a"
REQUEST_ID = "0a9a4b1e-2f0c-4b3a-8c61-9d3e2a7b6c5d"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift!rta-dev-admin-AbCdEf"
STATEMENTS = [
    "-- the lake, through Spectrum\nCREATE EXTERNAL SCHEMA IF NOT EXISTS lake FROM DATA CATALOG DATABASE 'rta_dev'",
    "CREATE MATERIALIZED VIEW events_stream AUTO REFRESH YES AS SELECT 1",
    "-- typed views\nCREATE OR REPLACE VIEW events AS\nSELECT   *\n  FROM events_stream",
]


def _properties(statements: list[str] = STATEMENTS, workgroup: str = "rta-dev") -> dict[str, Any]:
    return resource_properties(
        workgroup=workgroup,
        database="dev",
        secret_arn=SECRET,
        statements=statements,
        statements_digest=statements_hash(statements),
        statement_name="rta-dev-streaming-ingestion",
    )


def _event(request: str, **fields: Any) -> dict[str, Any]:
    return {
        "RequestType": request,
        "RequestId": REQUEST_ID,
        "LogicalResourceId": "WarehouseStreamingIngestionSql",
        "ResourceType": "Custom::RedshiftSql",
        "ResourceProperties": _properties(),
        **fields,
    }


def _poll(status: str = "FINISHED", **described: Any) -> dict[str, Any]:
    return {"Id": BATCH_ID, "Status": status, **described}


@pytest.fixture
def redshift_data() -> Iterator[tuple[Any, Stubber]]:
    data_api = client("redshift-data", region="us-east-1")
    with Stubber(data_api) as stubber:
        yield data_api, stubber
        stubber.assert_no_pending_responses()


def _expect_batch(stubber: Stubber, statements: list[str] = STATEMENTS, workgroup: str = "rta-dev") -> None:
    stubber.add_response(
        "batch_execute_statement",
        {"Id": BATCH_ID, "WorkgroupName": workgroup, "Database": "dev", "SecretArn": SECRET},
        {
            "WorkgroupName": workgroup,
            "Database": "dev",
            "SecretArn": SECRET,
            "StatementName": "rta-dev-streaming-ingestion",
            "Sqls": statements,
            "ClientToken": REQUEST_ID,
        },
    )


def _expect_describe(stubber: Stubber, response: dict[str, Any]) -> None:
    stubber.add_response("describe_statement", response, {"Id": BATCH_ID})


def test_create_submits_every_statement_as_one_batch(redshift_data: tuple[Any, Stubber]) -> None:
    data_api, stubber = redshift_data
    _expect_batch(stubber)
    assert on_event(_event("Create"), data_api) == {
        "PhysicalResourceId": "rta-dev-streaming-ingestion",
        "StatementId": BATCH_ID,
    }


def test_update_with_the_same_statements_runs_nothing(redshift_data: tuple[Any, Stubber]) -> None:
    data_api, _ = redshift_data  # the stubber fails any call
    event = _event(
        "Update",
        PhysicalResourceId="rta-dev-streaming-ingestion",
        OldResourceProperties={**_properties(), "SecretArn": SECRET + "-rotated"},
    )
    assert on_event(event, data_api) == {
        "PhysicalResourceId": "rta-dev-streaming-ingestion",
        "StatementId": "",
    }
    assert is_complete({**event, "StatementId": ""}, data_api) == {"IsComplete": True}


@pytest.mark.parametrize(
    "old", [_properties(STATEMENTS[:2]), _properties(workgroup="rta-old")], ids=["statements", "workgroup"]
)
def test_update_runs_the_statements_again_when_they_or_their_target_changed(
    redshift_data: tuple[Any, Stubber], old: dict[str, Any]
) -> None:
    data_api, stubber = redshift_data
    _expect_batch(stubber)
    event = _event("Update", PhysicalResourceId="kept-id", OldResourceProperties=old)
    assert on_event(event, data_api) == {"PhysicalResourceId": "kept-id", "StatementId": BATCH_ID}


def test_delete_leaves_the_warehouse_alone(redshift_data: tuple[Any, Stubber]) -> None:
    data_api, _ = redshift_data
    event = _event("Delete", PhysicalResourceId="rta-dev-streaming-ingestion")
    assert on_event(event, data_api) == {
        "PhysicalResourceId": "rta-dev-streaming-ingestion",
        "StatementId": "",
    }


@pytest.mark.parametrize("status", ["SUBMITTED", "PICKED", "STARTED"])
def test_a_batch_still_running_is_not_complete(redshift_data: tuple[Any, Stubber], status: str) -> None:
    data_api, stubber = redshift_data
    _expect_describe(stubber, _poll(status))
    assert is_complete({**_event("Create"), "StatementId": BATCH_ID}, data_api) == {"IsComplete": False}


def test_a_finished_batch_is_complete(redshift_data: tuple[Any, Stubber]) -> None:
    data_api, stubber = redshift_data
    _expect_describe(stubber, _poll("FINISHED"))
    assert is_complete({**_event("Create"), "StatementId": BATCH_ID}, data_api) == {"IsComplete": True}


def test_a_failed_statement_fails_with_its_index_sql_and_redshift_error(
    redshift_data: tuple[Any, Stubber],
) -> None:
    data_api, stubber = redshift_data
    error = 'ERROR: relation "events_stream" does not exist'
    _expect_describe(
        stubber,
        _poll(
            "FAILED",
            Error=error,
            SubStatements=[
                {"Id": f"{BATCH_ID}:1", "Status": "FINISHED", "QueryString": STATEMENTS[0]},
                {"Id": f"{BATCH_ID}:2", "Status": "FINISHED", "QueryString": STATEMENTS[1]},
                {"Id": f"{BATCH_ID}:3", "Status": "FAILED", "Error": error, "QueryString": STATEMENTS[2]},
            ],
        ),
    )
    with pytest.raises(RedshiftSqlError) as failed:
        is_complete({**_event("Create"), "StatementId": BATCH_ID}, data_api)
    assert str(failed.value) == (
        f"Redshift batch {BATCH_ID} FAILED at statement 3 of 3: {error} | "
        "SQL: CREATE OR REPLACE VIEW events AS SELECT * FROM events_stream"
    )


def test_the_failed_statement_is_cut_to_200_characters_and_read_from_the_properties_if_needed() -> None:
    long_view = "CREATE VIEW v AS SELECT " + ", ".join(f"column_{i}" for i in range(60))
    described = _poll(
        "FAILED",
        SubStatements=[
            {"Id": f"{BATCH_ID}:1", "Status": "FINISHED"},
            {"Id": f"{BATCH_ID}:2", "Status": "FAILED", "Error": "ERROR: column_59 ?"},
            {"Id": f"{BATCH_ID}:3", "Status": "ABORTED"},
        ],
    )
    reason = redshift_sql.failure_reason(described, [STATEMENTS[0], long_view, STATEMENTS[2]])
    prefix = f"Redshift batch {BATCH_ID} FAILED at statement 2 of 3: ERROR: column_59 ? | SQL: "
    assert reason == prefix + long_view[:200]
    assert len(reason) == len(prefix) + 200


def test_an_aborted_batch_fails_with_the_first_aborted_statement(redshift_data: tuple[Any, Stubber]) -> None:
    data_api, stubber = redshift_data
    _expect_describe(
        stubber,
        _poll(
            "ABORTED",
            Error="Query cancelled on user's request",
            SubStatements=[
                {"Id": f"{BATCH_ID}:1", "Status": "FINISHED"},
                {"Id": f"{BATCH_ID}:2", "Status": "ABORTED"},
                {"Id": f"{BATCH_ID}:3", "Status": "ABORTED"},
            ],
        ),
    )
    with pytest.raises(
        RedshiftSqlError, match=r"^Redshift batch \S+ ABORTED at statement 2 of 3: Query cancelled"
    ):
        is_complete({**_event("Create"), "StatementId": BATCH_ID}, data_api)


def test_a_batch_aborted_before_any_statement_names_no_statement() -> None:
    reason = redshift_sql.failure_reason(_poll("ABORTED"), STATEMENTS)
    assert reason == f"Redshift batch {BATCH_ID} ABORTED: no error text from Redshift"


def test_one_function_serves_both_framework_calls(redshift_data: tuple[Any, Stubber]) -> None:
    data_api, stubber = redshift_data
    _expect_batch(stubber)
    _expect_describe(stubber, _poll("STARTED"))
    submitted = handle(_event("Create"), data_api)
    # The framework passes onEvent's answer on to isComplete, merged into the request.
    assert handle({**_event("Create"), **submitted}, data_api) == {"IsComplete": False}


def test_the_lambda_handler_is_glue_over_handle(
    redshift_data: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_api, stubber = redshift_data
    spec = importlib.util.spec_from_file_location(
        "redshift_sql_handler", REPO_ROOT / "lambdas" / "redshift_sql" / "handler.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "client", lambda service: data_api)
    _expect_describe(stubber, _poll("FINISHED"))
    assert module.handler({**_event("Create"), "StatementId": BATCH_ID}, None) == {"IsComplete": True}


def test_statements_hash_follows_content_and_order_only() -> None:
    assert statements_hash(STATEMENTS) == statements_hash(list(STATEMENTS))
    assert statements_hash(STATEMENTS) != statements_hash(STATEMENTS[::-1])
    assert statements_hash(STATEMENTS) != statements_hash([*STATEMENTS[:2], STATEMENTS[2] + " "])


@pytest.mark.parametrize("count", [0, MAX_BATCH_STATEMENTS + 1])
def test_a_batch_holds_1_to_40_statements(count: int) -> None:
    with pytest.raises(ValueError, match=f"^{count} statements: one Data API batch takes 1 to 40$"):
        _properties(["SELECT 1"] * count)
