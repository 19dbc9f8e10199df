"""The Redshift SQL custom resource: run the warehouse DDL through the Data API and wait for Redshift's
verdict, so a failing statement fails the deploy instead of leaving a green stack over a broken warehouse.

CloudFormation drives it through the CDK Provider framework. BatchExecuteStatement only queues the
batch and answers with an id, so `on_event` submits it and the framework then calls `is_complete`
every query interval until DescribeStatement reports FINISHED (success) or FAILED / ABORTED (raise:
the framework fails the resource with our message, and CloudFormation rolls back).

One Lambda function plays both parts (`handle`): the Data API lets an IAM identity describe only
the statements it ran (`redshift-data:statement-owner-iam-userid`), and a function's identity is its
role session, named after the function.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

# The Data API's limit on `Sqls` in one BatchExecuteStatement.
MAX_BATCH_STATEMENTS = 40
SQL_EXCERPT_CHARS = 200
FINISHED = "FINISHED"
FAILED = ("FAILED", "ABORTED")
# onEvent's answer field that the framework passes on to isComplete (CloudFormation's own requests
# never carry it): it tells the two calls apart and names the batch to poll ("" = nothing ran).
STATEMENT_ID = "StatementId"
# The properties that decide whether an Update runs the statements again.
_TARGET = ("WorkgroupName", "Database", "StatementsHash")


class RedshiftSqlError(RuntimeError):
    """The batch failed or was aborted; the message is what CloudFormation shows as the reason."""


def statements_hash(statements: Sequence[Any]) -> str:
    """The digest of the statements as the template holds them: with CloudFormation references
    (`Fn::Join`, `Fn::GetAtt`) in place of deploy-time values, so it is stable across synths."""
    return hashlib.sha256(json.dumps(list(statements), sort_keys=True).encode()).hexdigest()


def resource_properties(
    *,
    workgroup: str,
    database: str,
    secret_arn: str,
    statements: Sequence[str],
    statements_digest: str,
    statement_name: str,
) -> dict[str, Any]:
    """The custom resource's properties, named as BatchExecuteStatement's parameters, plus the
    statements' digest (`statements_hash`), which decides whether an Update runs them again."""
    if not 0 < len(statements) <= MAX_BATCH_STATEMENTS:
        raise ValueError(
            f"{len(statements)} statements: one Data API batch takes 1 to {MAX_BATCH_STATEMENTS}"
        )
    return {
        "WorkgroupName": workgroup,
        "Database": database,
        "SecretArn": secret_arn,
        "StatementName": statement_name,
        "Sqls": list(statements),
        "StatementsHash": statements_digest,
    }


def handle(event: Mapping[str, Any], redshift_data: Any) -> dict[str, Any]:
    """The Provider framework's onEvent and isComplete calls, for one function serving both."""
    if STATEMENT_ID in event:
        return is_complete(event, redshift_data)
    return on_event(event, redshift_data)


def on_event(event: Mapping[str, Any], redshift_data: Any) -> dict[str, Any]:
    """Create: submit the batch. Update: submit it again only if the statements or their target
    changed. Delete: nothing (the schemas and views live and die with the namespace)."""
    request = event["RequestType"]
    properties = event["ResourceProperties"]
    physical_id = properties["StatementName"] if request == "Create" else event["PhysicalResourceId"]
    statement_id = ""
    if request == "Create" or (
        request == "Update" and _target(properties) != _target(event["OldResourceProperties"])
    ):
        statement_id = submit(properties, event["RequestId"], redshift_data)
    return {"PhysicalResourceId": physical_id, STATEMENT_ID: statement_id}


def submit(properties: Mapping[str, Any], request_id: str, redshift_data: Any) -> str:
    """Queue the statements as one batch (one transaction) and return its statement id."""
    response = redshift_data.batch_execute_statement(
        WorkgroupName=properties["WorkgroupName"],
        Database=properties["Database"],
        SecretArn=properties["SecretArn"],
        StatementName=properties["StatementName"],
        Sqls=list(properties["Sqls"]),
        # CloudFormation's request id: a retried invocation does not queue the batch twice.
        ClientToken=request_id[:64],
    )
    statement_id: str = response["Id"]
    logger.info("submitted %d statements as %s", len(properties["Sqls"]), statement_id)
    return statement_id


def is_complete(event: Mapping[str, Any], redshift_data: Any) -> dict[str, Any]:
    """True once Redshift finished the batch; raises RedshiftSqlError if it failed or was aborted."""
    statement_id = event[STATEMENT_ID]
    if not statement_id:
        return {"IsComplete": True}
    described = redshift_data.describe_statement(Id=statement_id)
    status = described["Status"]
    if status == FINISHED:
        return {"IsComplete": True}
    if status in FAILED:
        raise RedshiftSqlError(failure_reason(described, event["ResourceProperties"]["Sqls"]))
    return {"IsComplete": False}


def failure_reason(described: Mapping[str, Any], statements: Sequence[str]) -> str:
    """Which statement of the batch broke (1-based, as Redshift numbers sub-statements), Redshift's
    error and the statement's start (comments dropped, whitespace folded to fit one event line)."""
    batch = f"Redshift batch {described['Id']} {described['Status']}"
    subs = list(described.get("SubStatements") or [])
    culprit = next(
        ((i, s) for status in FAILED for i, s in enumerate(subs, 1) if s.get("Status") == status), None
    )
    if culprit is None:
        return f"{batch}: {described.get('Error') or 'no error text from Redshift'}"
    index, sub = culprit
    error = sub.get("Error") or described.get("Error") or "no error text from Redshift"
    sql = sub.get("QueryString") or (statements[index - 1] if index <= len(statements) else "")
    return f"{batch} at statement {index} of {len(subs)}: {error} | SQL: {sql_excerpt(sql)}"


def sql_excerpt(sql: str) -> str:
    code = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return " ".join(" ".join(code).split())[:SQL_EXCERPT_CHARS]


def _target(properties: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(properties.get(key) for key in _TARGET)
