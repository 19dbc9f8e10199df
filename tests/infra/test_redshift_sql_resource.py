"""The Redshift DDL runs through a CDK Provider custom resource that waits for Redshift's verdict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.config import Stage
from pipeline.warehouse.redshift_sql import statements_hash
from stacks.assembly import Assembly
from stacks.warehouse import REDSHIFT_DATABASE, SQL_QUERY_INTERVAL, SQL_TOTAL_TIMEOUT, redshift_statements

OWN_STATEMENTS = {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}


def _single(resources: Mapping[str, Any]) -> tuple[str, Any]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.items()))


def _functions(synthesised: Assembly, stage: Stage) -> Mapping[str, Any]:
    return synthesised.template(stage.name, "warehouse").find_resources("AWS::Lambda::Function")


def _sql_function(synthesised: Assembly, stage: Stage) -> tuple[str, dict[str, Any]]:
    return _single(
        {
            k: f["Properties"]
            for k, f in _functions(synthesised, stage).items()
            if f["Properties"].get("FunctionName") == stage.function("redshift-sql")
        }
    )


def test_sql_resource_is_served_by_a_provider_with_an_is_complete_waiter(
    synthesised: Assembly, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "warehouse")
    _, resource = _single(template.find_resources("Custom::RedshiftSql"))
    template.resource_count_is("Custom::AWS", 1)  # only the admin secret lookup is left
    on_event_id = resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    functions = _functions(synthesised, aws_stage)
    framework_env = functions[on_event_id]["Properties"]["Environment"]["Variables"]
    sql_id, sql = _sql_function(synthesised, aws_stage)
    # One function answers both onEvent and isComplete (it may describe only its own statements).
    assert framework_env["USER_ON_EVENT_FUNCTION_ARN"] == {"Fn::GetAtt": [sql_id, "Arn"]}
    assert framework_env["USER_IS_COMPLETE_FUNCTION_ARN"] == {"Fn::GetAtt": [sql_id, "Arn"]}
    waiter_id, waiter = _single(template.find_resources("AWS::StepFunctions::StateMachine"))
    assert framework_env["WAITER_STATE_MACHINE_ARN"] == {"Ref": waiter_id}
    definition = json.loads("".join(str(p) for p in waiter["Properties"]["DefinitionString"]["Fn::Join"][1]))
    [retry] = [
        r
        for r in definition["States"]["framework-isComplete-task"]["Retry"]
        if r["ErrorEquals"] == ["States.ALL"]
    ]
    interval = SQL_QUERY_INTERVAL.to_seconds()
    assert retry["IntervalSeconds"] == interval
    assert retry["MaxAttempts"] == SQL_TOTAL_TIMEOUT.to_seconds() // interval
    assert sql["Runtime"] == "python3.13"
    assert sql["Handler"] == "handler.handler"
    assert "Layers" not in sql  # standard library and the runtime's boto3 only


def test_sql_resource_submits_the_rendered_statements_with_their_hash(
    synthesised: Assembly, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "warehouse")
    resource_id, resource = _single(template.find_resources("Custom::RedshiftSql"))
    props = resource["Properties"]
    assert props["WorkgroupName"] == aws_stage.redshift_namespace
    assert props["Database"] == REDSHIFT_DATABASE
    assert props["StatementName"] == f"{aws_stage.prefix}-streaming-ingestion"
    assert len(props["Sqls"]) == len(redshift_statements(aws_stage, "arn:aws:iam::1:role/r")) > 0
    # The hash covers the statements as the template holds them, role ARN reference included.
    assert props["StatementsHash"] == statements_hash(props["Sqls"])
    assert "StreamingIngestionRole" in json.dumps(props["Sqls"])
    assert "AdminSecretLookup" in json.dumps(props["SecretArn"])
    depends_on = resource["DependsOn"]
    assert any(d.startswith("WarehouseRedshiftWorkgroup") for d in depends_on)
    assert any(d.startswith("WarehouseStreamingIngestionRoleDefaultPolicy") for d in depends_on), resource_id


def test_sql_function_may_run_sql_on_its_workgroup_and_read_only_its_own_statements(
    synthesised: Assembly, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "warehouse")
    sql_id, sql = _sql_function(synthesised, aws_stage)
    role_id = sql["Role"]["Fn::GetAtt"][0]
    _, policy = _single(
        {
            k: p
            for k, p in template.find_resources("AWS::IAM::Policy").items()
            if {"Ref": role_id} in p["Properties"]["Roles"]
        }
    )
    statements = {s["Action"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert sorted(statements) == [
        "kms:Decrypt",
        "redshift-data:BatchExecuteStatement",
        "redshift-data:DescribeStatement",
        "secretsmanager:GetSecretValue",
    ]
    run = json.dumps(statements["redshift-data:BatchExecuteStatement"]["Resource"])
    assert ":workgroup/" in run and "WarehouseRedshiftWorkgroup" in run
    describe = statements["redshift-data:DescribeStatement"]
    assert describe["Resource"] == "*"
    assert describe["Condition"] == OWN_STATEMENTS
    assert "AdminSecretLookup" in json.dumps(statements["secretsmanager:GetSecretValue"]["Resource"])
    assert all("Condition" not in s for a, s in statements.items() if a != "redshift-data:DescribeStatement")
    assert sql_id.startswith("Warehouseredshiftsql")
