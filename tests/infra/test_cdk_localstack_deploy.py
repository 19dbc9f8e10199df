"""`cdk deploy -c target=localstack` against LocalStack in host mode, checked through the service APIs.

LocalStack without Docker runs no Lambda, so the target has no functions; it does create what moto
cannot: the CloudWatch alarms and the SNS topic they notify. Its stack status is not trusted either.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.aws import client
from pipeline.config import REPO_ROOT, STREAMS, stage
from pipeline.local.emulator import free_port
from stacks import alarm_thresholds as t
from stacks.app import LOCALSTACK_UNSUPPORTED
from stacks.assembly import Assembly
from stacks.processing import FUNCTIONS

ACCOUNT = "000000000000"  # LocalStack's default account
REGION = "us-east-1"
# The services the bootstrap and the stack touch; start.sh's default list lacks KMS, SNS and SSM.
SERVICES = "s3,sqs,kinesis,cloudformation,cloudwatch,iam,sts,kms,sns,ssm,logs"
# The CDK CLI caches the account of each access key id (~/.cdk/cache/accounts_partitions.json): the
# moto test's key already maps to moto's account there. LocalStack takes a 12-digit key as the account.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCOUNT, "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def localstack_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """LocalStack on a free loopback port with its state under tmp_path, stopped by PID (stop.sh)."""
    port = free_port()
    env = {**os.environ, "LOCALSTACK_PORT": str(port), "PIPELINE_STATE_DIR": str(tmp_path / "state")}
    try:
        subprocess.run(
            [str(REPO_ROOT / "localstack" / "start.sh")],
            env={**env, "SERVICES": SERVICES},
            check=True,
            capture_output=True,
            timeout=300,
        )
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        yield endpoint
    finally:
        subprocess.run([str(REPO_ROOT / "localstack" / "stop.sh")], env=env, check=False, timeout=60)


def _metric(alarm: dict[str, Any]) -> tuple[str, str, dict[str, str], str]:
    """(namespace, metric, dimensions, statistic) of a one-metric alarm, in either of its API shapes."""
    if "MetricName" in alarm:
        metric, statistic = alarm, alarm.get("Statistic") or alarm["ExtendedStatistic"]
    else:
        (query,) = alarm["Metrics"]
        metric, statistic = query["MetricStat"]["Metric"], query["MetricStat"]["Stat"]
    dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
    return metric["Namespace"], metric["MetricName"], dimensions, statistic


@pytest.mark.integration
def test_cdk_deploy_to_localstack_creates_streams_queues_buckets_alarms_and_topic(
    localstack_endpoint: str,
    tmp_path: Path,
    cdk: Callable[..., None],
    synthesised: Assembly,
    check_deployed_core: Callable[..., Any],
) -> None:
    local = stage("local")
    # Bootstrap from a folder without cdk.json, so the CLI does not synthesise the app for nothing.
    cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], tmp_path, localstack_endpoint, CREDENTIALS)
    out = tmp_path / "cdk.out"
    cdk(
        [
            "deploy",
            "--all",
            "-c",
            "stage=local",
            "-c",
            "target=localstack",
            "-o",
            str(out),
            "--require-approval",
            "never",
            "--progress",
            "events",
        ],
        REPO_ROOT,
        localstack_endpoint,
        CREDENTIALS,
    )

    # The target leaves out exactly the resource types listed, with their reasons, in stacks.app.
    template = json.loads((out / f"{local.prefix}-localstack.template.json").read_text())
    localstack_types = {r["Type"] for r in template["Resources"].values()} - {"AWS::CDK::Metadata"}
    aws_types = {
        r["Type"]
        for s in synthesised.pipelines["prod"].stacks.values()
        for r in synthesised.templates[s.stack_name].to_json()["Resources"].values()
    }
    assert aws_types - localstack_types == set(LOCALSTACK_UNSUPPORTED)
    assert localstack_types <= aws_types

    check_deployed_core(local, ACCOUNT)
    s3 = client("s3")
    assert s3.get_bucket_versioning(Bucket=local.lake_bucket)["Status"] == "Enabled"
    for bucket in (local.lake_bucket, local.access_log_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        )

    sns = client("sns")
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{local.alarm_topic}"
    assert [x["TopicArn"] for x in sns.list_topics()["Topics"]] == [topic_arn]
    topic = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert topic["KmsMasterKeyId"].startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")

    gt, lt = "GreaterThanThreshold", "LessThanThreshold"
    expected: dict[str, tuple[float, str]] = {}
    for logical in STREAMS:
        expected |= {
            f"iterator-age.{logical}": (t.ITERATOR_AGE_MS, gt),
            f"write-throttled.{logical}": (t.WRITE_THROTTLED_RECORDS, gt),
            f"read-throttled.{logical}": (t.READ_THROTTLED_REQUESTS, gt),
            f"put-records-success.{logical}": (t.PUT_RECORDS_SUCCESS_MIN, lt),
            f"get-records-success.{logical}": (t.GET_RECORDS_SUCCESS_MIN, lt),
        }
    for spec in FUNCTIONS:
        duration_limit = spec.timeout.to_milliseconds() * t.LAMBDA_DURATION_P99_OF_TIMEOUT
        expected |= {
            f"lambda-errors.{spec.logical}": (t.LAMBDA_ERRORS, gt),
            f"lambda-throttles.{spec.logical}": (t.LAMBDA_THROTTLES, gt),
            f"lambda-duration.{spec.logical}": (duration_limit, gt),
            f"lambda-iterator-age.{spec.logical}": (t.LAMBDA_ITERATOR_AGE_MS, gt),
        }
    expected |= {
        "dlq-depth": (t.DLQ_VISIBLE_MESSAGES, gt),
        "dlq-age": (t.DLQ_OLDEST_MESSAGE_AGE_S, gt),
        "mapping-failures": (t.MAPPING_FAILURES_VISIBLE, gt),
        "flink-downtime": (t.FLINK_DOWNTIME_MS, gt),
        "flink-failed-checkpoints": (t.FLINK_FAILED_CHECKPOINTS, gt),
        "flink-late-records-dropped": (t.FLINK_LATE_RECORDS_DROPPED, gt),
        "firehose-freshness": (t.FIREHOSE_FRESHNESS_S, gt),
    }
    alarms = {
        a["AlarmName"].removeprefix(f"{local.prefix}-"): a
        for page in client("cloudwatch").get_paginator("describe_alarms").paginate()
        for a in page["MetricAlarms"]
    }
    assert len(alarms) == len(expected) == 30
    assert {name: (a["Threshold"], a["ComparisonOperator"]) for name, a in alarms.items()} == expected
    for alarm in alarms.values():
        assert alarm["EvaluationPeriods"] == t.EVALUATION_PERIODS
        assert alarm["DatapointsToAlarm"] == t.DATAPOINTS_TO_ALARM
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == alarm["OKActions"] == [topic_arn]
    for logical in STREAMS:
        assert _metric(alarms[f"iterator-age.{logical}"]) == (
            "AWS/Kinesis",
            "GetRecords.IteratorAgeMilliseconds",
            {"StreamName": local.stream(logical)},
            "Maximum",
        )
    assert _metric(alarms["dlq-depth"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": local.dlq_name},
        "Maximum",
    )
    assert _metric(alarms["mapping-failures"])[2] == {"QueueName": local.on_failure_queue_name}
