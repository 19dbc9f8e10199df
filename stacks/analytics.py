"""The Managed Flink application (PyFlink 1.20) reading events-enriched and writing metrics and late/."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import aws_cdk.aws_kinesisanalytics_flink_alpha as flink
from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from pipeline.config import REPO_ROOT, Stage
from pipeline.flink_package import KINESIS_CONNECTOR
from pipeline.lake import layout
from stacks.common import acknowledge, staging_dir
from stacks.ingest import Ingest
from stacks.lake import Lake

FLINK_DIR = REPO_ROOT / "flink"
# The Kinesis SQL connector is not bundled with PyFlink; its version and checksum are pinned once, in
# pipeline/flink_package.py, which fetches it when building the application zip (flink/README.md).
CONNECTOR_JAR = KINESIS_CONNECTOR.zip_path
RUN_OPTIONS = "kinesis.analytics.flink.run.options"
# Where the job finds the stage: the same cdk.json section the local PyFlink run reads.
PIPELINE_GROUP = "pipeline"


def application_properties() -> dict[str, dict[str, str]]:
    """Property groups from flink/application_properties.json (Managed Flink's own format), if present."""
    path = FLINK_DIR / "application_properties.json"
    if not path.exists():
        return {}
    groups = json.loads(path.read_text())
    return {g["PropertyGroupId"]: {k: str(v) for k, v in g["PropertyMap"].items()} for g in groups}


def code_dir() -> Path:
    """The application zip's content: the job at the root, lib/ jars, the pipeline package and settings."""
    files = {
        name.name: name
        for name in FLINK_DIR.iterdir()
        if name.name not in {"__pycache__", "tests"} and not name.name.startswith(".")
    }
    files.update(
        {
            "pipeline": REPO_ROOT / "pipeline",
            "schemas": REPO_ROOT / "schemas",
            "cdk.json": REPO_ROOT / "cdk.json",
        }
    )
    return staging_dir("flink", files)


class Analytics(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: Stage, ingest: Ingest, lake: Lake
    ) -> None:
        super().__init__(scope, construct_id)
        if not (FLINK_DIR / "main.py").exists():
            raise FileNotFoundError(f"{FLINK_DIR / 'main.py'}: the Flink job is missing")
        if not (FLINK_DIR / CONNECTOR_JAR).exists():
            message = (
                f"{FLINK_DIR / CONNECTOR_JAR} is missing: the Flink application will not start without it"
            )
            Annotations.of(self).add_warning_v2("pipeline:flink-connector-missing", message)
            warnings.warn(message, stacklevel=2)
        settings = stage.flink
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/kinesis-analytics/{stage.flink_application}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("kinesisanalytics.amazonaws.com"),
            description=f"{stage.flink_application}: read events-enriched, write metrics and late/",
        )
        properties = application_properties()
        properties[RUN_OPTIONS] = {"python": "main.py", "jarfile": CONNECTOR_JAR}
        properties.setdefault(PIPELINE_GROUP, {})["stage"] = stage.name
        self.application = flink.Application(
            self,
            "App",
            application_name=stage.flink_application,
            runtime=flink.Runtime.FLINK_1_20,
            code=flink.ApplicationCode.from_asset(str(code_dir())),
            role=self.role,
            property_groups=properties,
            parallelism=settings.parallelism,
            parallelism_per_kpu=1,
            auto_scaling_enabled=settings.autoscaling,
            checkpointing_enabled=True,
            checkpoint_interval=Duration.seconds(settings.checkpoint_interval_s),
            min_pause_between_checkpoints=Duration.seconds(max(1, settings.checkpoint_interval_s // 2)),
            snapshots_enabled=True,
            log_group=self.log_group,
            log_level=flink.LogLevel.INFO,
            metrics_level=flink.MetricsLevel.OPERATOR,
            removal_policy=RemovalPolicy.DESTROY,
        )
        ingest.streams["events-enriched"].grant_read(self.role)
        ingest.streams["metrics"].grant_write(self.role)
        lake.bucket_in(self).grant_put(self.role, f"{layout.LATE}*")
        code = "Reading the application's code zip from the CDK asset bucket (the construct's own grant)."
        acknowledge(
            self.role.node.find_child("DefaultPolicy").node.default_child,  # type: ignore[arg-type]
            {
                "AwsSolutions-IAM5[Resource::*]": "cloudwatch:PutMetricData has no resource-level permissions.",
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]": (
                    "logs:DescribeLogGroups cannot be scoped to one log group; writes are scoped to the app's stream."
                ),
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]": code,
                "AwsSolutions-IAM5[Action::s3:GetObject*]": code,
                "AwsSolutions-IAM5[Action::s3:GetBucket*]": code,
                "AwsSolutions-IAM5[Action::s3:List*]": code,
                "AwsSolutions-IAM5[Action::s3:Abort*]": "CDK's grantPut action group, on late/ only.",
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "Encrypting late/ objects and metrics records.",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": "CDK's grant on the metrics stream and lake keys only.",
                lake.object_arn_finding(
                    layout.LATE
                ): "Late events land under late/ in event-date partitions; the job owns that zone.",
            },
        )
