"""One CDK app per test session (the first synth costs ~9 s of jsii start-up): prod and dev on AWS,
local on the emulator target, cdk-nag attached as in app.py, so synthesis itself is the nag gate."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.aws import client
from pipeline.config import REPO_ROOT, STREAMS, Stage, stage
from stacks.assembly import Assembly, synthesise

AWS_STAGES = ("prod", "dev")
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
REGION = "us-east-1"


def _cdk(args: list[str], cwd: Path, endpoint: str, extra_env: Mapping[str, str]) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        **extra_env,
    }
    run = subprocess.run([str(CDK), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"cdk {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


@pytest.fixture(scope="session")
def cdk() -> Callable[[list[str], Path, str, Mapping[str, str]], None]:
    """`cdk(args, cwd, endpoint, extra_env)`: the CDK CLI against a local endpoint; fails the test on error."""
    return _cdk


@pytest.fixture(scope="session")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return synthesise(
        tmp_path_factory.mktemp("cdk.out"),
        {"prod": "aws", "dev": "aws", "local": "emulator"},
        stage_assets=False,
    )


@pytest.fixture(params=AWS_STAGES)
def aws_stage(request: pytest.FixtureRequest) -> Stage:
    return stage(request.param)


class DeployedCore(NamedTuple):
    stream_arns: dict[str, str]  # logical stream name -> ARN
    queues: dict[str, dict[str, str]]  # queue name -> its attributes


def _check_deployed_core(local: Stage, account: str) -> DeployedCore:
    """What every deploy target must create, read back through the service APIs (the endpoint in
    AWS_ENDPOINT_URL): the streams, the dead-letter queues with their redrive and KMS keys, the buckets."""
    kinesis = client("kinesis")
    assert sorted(kinesis.list_streams()["StreamNames"]) == sorted(local.stream(s) for s in STREAMS)
    stream_arns = {}
    for logical in STREAMS:
        summary = kinesis.describe_stream_summary(StreamName=local.stream(logical))[
            "StreamDescriptionSummary"
        ]
        assert summary["OpenShardCount"] == local.shards[logical]
        assert summary["RetentionPeriodHours"] == local.retention_hours
        stream_arns[logical] = summary["StreamARN"]

    sqs = client("sqs")
    queues = {
        url.rsplit("/", 1)[1]: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for url in sqs.list_queues()["QueueUrls"]
    }
    assert sorted(queues) == sorted([local.dlq_name, local.dlq_redrive_name, local.on_failure_queue_name])
    for name in (local.dlq_name, local.on_failure_queue_name):
        redrive = json.loads(queues[name]["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == local.dlq_max_receive_count
        assert redrive["deadLetterTargetArn"] == queues[local.dlq_redrive_name]["QueueArn"]
    for attributes in queues.values():
        assert attributes["MessageRetentionPeriod"] == str(local.dlq_retention_days * 86400)
        assert attributes["KmsMasterKeyId"].startswith(f"arn:aws:kms:{REGION}:{account}:key/")

    buckets = {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
    assert {local.lake_bucket, local.access_log_bucket} <= buckets
    return DeployedCore(stream_arns, queues)


@pytest.fixture(scope="session")
def check_deployed_core() -> Callable[[Stage, str], DeployedCore]:
    """`check_deployed_core(stage, account)`: asserts the streams, queues and buckets a deploy made."""
    return _check_deployed_core
