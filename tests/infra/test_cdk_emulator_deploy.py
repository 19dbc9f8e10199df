"""`cdk deploy -c target=emulator` against moto server, checked through the service APIs.

moto's CloudFormation reports CREATE_COMPLETE even when it failed half-way (a crash in one resource
leaves the rest uncreated), so nothing here trusts the stack status: every resource is looked up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.aws import client
from pipeline.config import REPO_ROOT, EventSourceMapping, stage
from stacks.app import EMULATOR_NOT_ENFORCED, EMULATOR_UNSUPPORTED
from stacks.common import RUNTIME
from stacks.processing import ENRICHER, LAKE_WRITER

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
# The CLI hands CloudFormation a TemplateURL built from this S3 endpoint; moto's CloudFormation
# only resolves s3.amazonaws.com-style URLs (from its own S3), not its own http://127.0.0.1 one.
S3_FOR_CLOUDFORMATION = {"AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION": f"https://s3.{REGION}.amazonaws.com"}


def _mapping_settings(mapping: dict[str, Any]) -> EventSourceMapping:
    return EventSourceMapping(
        batch_size=mapping["BatchSize"],
        max_batching_window_s=mapping["MaximumBatchingWindowInSeconds"],
        starting_position=mapping["StartingPosition"],
        parallelization_factor=mapping["ParallelizationFactor"],
        retry_attempts=mapping["MaximumRetryAttempts"],
        bisect_on_error=mapping["BisectBatchOnFunctionError"],
        max_record_age_s=mapping["MaximumRecordAgeInSeconds"],
        report_batch_item_failures=mapping.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
    )


@pytest.mark.integration
def test_cdk_deploy_to_moto_creates_streams_queues_buckets_functions_and_mappings(
    moto_endpoint: str,
    tmp_path: Path,
    cdk: Callable[..., None],
    check_deployed_core: Callable[..., Any],
) -> None:
    local = stage("local")
    # Bootstrap from a folder without cdk.json, so the CLI does not synthesise the app for nothing.
    cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], tmp_path, moto_endpoint, S3_FOR_CLOUDFORMATION)
    cdk(
        [
            "deploy",
            "--all",
            "-c",
            "stage=local",
            "-c",
            "target=emulator",
            "-o",
            str(tmp_path / "cdk.out"),
            "--require-approval",
            "never",
            "--progress",
            "events",
        ],
        REPO_ROOT,
        moto_endpoint,
        S3_FOR_CLOUDFORMATION,
    )

    stream_arns, queues = check_deployed_core(local, ACCOUNT)
    s3 = client("s3")
    sse = s3.get_bucket_encryption(Bucket=local.lake_bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"

    aws_lambda = client("lambda")
    functions = {f["FunctionName"]: f for f in aws_lambda.list_functions()["Functions"]}
    assert sorted(functions) == sorted(local.function(s.logical) for s in (ENRICHER, LAKE_WRITER))
    roles = {r["Arn"] for r in client("iam").list_roles()["Roles"]}
    for function in functions.values():
        assert function["Runtime"] == RUNTIME.name
        assert function["Handler"] == "handler.handler"
        assert function["Environment"]["Variables"]["PIPELINE_STAGE"] == "local"
        assert function["Role"] in roles

    on_failure_arn = queues[local.on_failure_queue_name]["QueueArn"]
    expected = {
        (local.function("enricher"), stream_arns["events-raw"]): local.enricher_mapping,
        (local.function("lake-writer"), stream_arns["events-enriched"]): local.lake_writer_mapping,
        (local.function("lake-writer"), stream_arns["metrics"]): local.lake_writer_mapping,
    }
    mappings = aws_lambda.list_event_source_mappings()["EventSourceMappings"]
    assert len(mappings) == len(expected)
    for mapping in mappings:
        key = (mapping["FunctionArn"].rsplit(":", 1)[1], mapping["EventSourceArn"])
        assert _mapping_settings(mapping) == expected[key], key
        assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == on_failure_arn


def test_every_type_said_to_lack_a_moto_model_really_lacks_one() -> None:
    """The emulator's gaps are listed, and the list is checked against the installed moto."""
    from moto.cloudformation.parsing import get_model_map

    said_missing = {t for t, why in EMULATOR_UNSUPPORTED.items() if "has no model" in why}
    said_missing |= {t for t, why in EMULATOR_NOT_ENFORCED.items() if "has no model" in why}
    assert len(said_missing) >= 15
    assert said_missing & set(get_model_map()) == set()
