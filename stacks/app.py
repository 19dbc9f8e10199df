"""Composes the pipeline's constructs into stacks for a deployment target, and runs cdk-nag over them."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import App, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from pipeline.config import Stage
from stacks.analytics import Analytics
from stacks.common import Target
from stacks.ingest import Ingest
from stacks.lake import Lake
from stacks.monitoring import Monitoring
from stacks.processing import Processing
from stacks.warehouse import Warehouse

# What the `emulator` target leaves out, by resource type, and why. A deploy to moto then creates
# exactly what the tests check; tests/infra asserts this list is complete against the aws target.
_NO_MODEL = "moto 5.2's CloudFormation has no model for it (it would skip it silently)"
_VPC = "only the Redshift workgroup, which moto's CloudFormation cannot create, uses the VPC"
_ALARMS = "moto's CloudFormation skips AWS::CloudWatch::Alarm, so topic and dashboard would watch nothing"
EMULATOR_UNSUPPORTED = {
    "AWS::KinesisFirehose::DeliveryStream": _NO_MODEL + "; the local stand-in archives raw/ itself",
    "AWS::KinesisAnalyticsV2::Application": _NO_MODEL + "; the local stand-in runs the job on PyFlink",
    "AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption": _NO_MODEL,
    "AWS::Logs::LogStream": "only the Flink application logs to a pre-made stream",
    "AWS::Glue::Database": _NO_MODEL,
    "AWS::Glue::Table": _NO_MODEL + "; the local SQL engine registers the same tables in DuckDB",
    "AWS::Glue::Registry": _NO_MODEL,
    "AWS::Glue::Schema": _NO_MODEL,
    "AWS::Glue::SchemaVersion": _NO_MODEL,
    "AWS::Athena::WorkGroup": _NO_MODEL,
    "AWS::Athena::NamedQuery": _NO_MODEL,
    "AWS::RedshiftServerless::Namespace": _NO_MODEL,
    "AWS::RedshiftServerless::Workgroup": _NO_MODEL,
    "Custom::AWS": "an AwsCustomResource runs a Lambda, and moto runs no Lambda code without Docker",
    "Custom::RedshiftSql": "it applies the Redshift DDL through a Lambda, and moto runs no Lambda code without Docker",
    "AWS::StepFunctions::StateMachine": "only the Redshift SQL custom resource's waiter uses one",
    "AWS::EC2::VPC": _VPC,
    "AWS::EC2::Subnet": _VPC,
    "AWS::EC2::RouteTable": _VPC,
    "AWS::EC2::SubnetRouteTableAssociation": _VPC,
    "AWS::EC2::SecurityGroup": _VPC,
    "AWS::EC2::FlowLog": _VPC,
    "AWS::SecretsManager::Secret": _NO_MODEL + "; the local stage pseudonymises with its dev key",
    "AWS::CloudWatch::Alarm": _NO_MODEL + "; tests/infra pins the thresholds instead",
    "AWS::CloudWatch::Dashboard": _ALARMS,
    "AWS::SNS::Topic": _ALARMS,
    "AWS::SNS::TopicPolicy": _NO_MODEL,
}
# In the emulator stack, but not enforced by moto: deployed without error, checked on AWS only.
EMULATOR_NOT_ENFORCED = {
    "AWS::S3::BucketPolicy": _NO_MODEL + ": the TLS-only and log-delivery bucket policies",
    "AWS::SQS::QueuePolicy": _NO_MODEL + ": the TLS-only queue policies",
    "AWS::Kinesis::Stream.StreamEncryption": "moto creates the streams unencrypted (EncryptionType NONE)",
    "AWS::S3::Bucket.LifecycleConfiguration": "moto's CloudFormation does not apply lifecycle rules",
    "AWS::S3::Bucket.PublicAccessBlockConfiguration": "moto's CloudFormation does not apply it",
    "AWS::S3::Bucket.LoggingConfiguration": "moto's CloudFormation does not apply server access logging",
    "AWS::Lambda::Function.Layers": "moto's CloudFormation creates the layer but does not attach it",
}

# What the `localstack` target leaves out, by resource type, and why: LocalStack on the host (no
# Docker) creates streams, queues, buckets, alarms and topics, but runs no Lambda; tests/infra
# asserts this list is complete against the aws target.
_NO_LAMBDA = "LocalStack runs no Lambda code without Docker"
_FUNCTION = _NO_LAMBDA + ": the enricher, lake-writer and raw-archiver functions are left out"
_ROLE = "only the left-out functions, Firehose and Flink assume roles"
_PAID = "not in LocalStack's free edition"
LOCALSTACK_UNSUPPORTED = {
    "AWS::Lambda::Function": _FUNCTION,
    "AWS::Lambda::LayerVersion": _FUNCTION + ", and so their dependency layers",
    "AWS::Lambda::EventSourceMapping": _FUNCTION + ", and so their Kinesis mappings",
    "AWS::IAM::Role": _ROLE,
    "AWS::IAM::Policy": _ROLE,
    "AWS::Logs::LogGroup": "only the left-out functions, Firehose and Flink log to their own groups",
    "AWS::Logs::LogStream": "only the Flink application logs to a pre-made stream",
    "AWS::SecretsManager::Secret": "only the left-out enricher reads the pseudonym key",
    "AWS::KinesisFirehose::DeliveryStream": "its transformation is the raw-archiver Lambda, and "
    "LocalStack delivers from a Kinesis source only with Docker",
    "AWS::KinesisAnalyticsV2::Application": _PAID + "; the local stand-in runs the job on PyFlink",
    "AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption": _PAID,
    "AWS::Glue::Database": _PAID,
    "AWS::Glue::Table": _PAID + "; the local SQL engine registers the same tables in DuckDB",
    "AWS::Glue::Registry": _PAID,
    "AWS::Glue::Schema": _PAID,
    "AWS::Glue::SchemaVersion": _PAID,
    "AWS::Athena::WorkGroup": _PAID,
    "AWS::Athena::NamedQuery": _PAID,
    "AWS::RedshiftServerless::Namespace": _PAID,
    "AWS::RedshiftServerless::Workgroup": _PAID,
    "Custom::AWS": "an AwsCustomResource runs a Lambda; " + _NO_LAMBDA,
    "Custom::RedshiftSql": "it applies the Redshift DDL through a Lambda; " + _NO_LAMBDA,
    "AWS::StepFunctions::StateMachine": "only the Redshift SQL custom resource's waiter uses one",
    **{
        t: "only the Redshift workgroup (" + _PAID + ") uses the VPC"
        for t in (
            "AWS::EC2::VPC",
            "AWS::EC2::Subnet",
            "AWS::EC2::RouteTable",
            "AWS::EC2::SubnetRouteTableAssociation",
            "AWS::EC2::SecurityGroup",
            "AWS::EC2::FlowLog",
        )
    },
}
# In the localstack stack, but not enforced by LocalStack 2026.3 (its CloudFormation reports them
# CREATE_COMPLETE): deployed without error, checked on AWS only.
LOCALSTACK_NOT_ENFORCED = {
    "AWS::CloudWatch::Dashboard": "LocalStack's CloudFormation creates no dashboard (GetDashboard: does not exist)",
    "AWS::Kinesis::Stream.StreamEncryption": "LocalStack creates the streams unencrypted (EncryptionType NONE)",
    "AWS::S3::Bucket.BucketEncryption": "LocalStack reports AES256 for the KMS-encrypted lake bucket",
    "AWS::S3::Bucket.LifecycleConfiguration": "LocalStack's CloudFormation does not apply lifecycle rules",
    "AWS::S3::Bucket.LoggingConfiguration": "LocalStack's CloudFormation does not apply server access logging",
}


@dataclass
class Pipeline:
    stacks: dict[str, Stack] = field(default_factory=dict)
    lake: Lake | None = None
    ingest: Ingest | None = None
    processing: Processing | None = None
    analytics: Analytics | None = None
    warehouse: Warehouse | None = None
    monitoring: Monitoring | None = None


def _stack(app: App, stage: Stage, part: str, description: str, pipeline: Pipeline) -> Stack:
    stack = Stack(app, f"{stage.prefix}-{part}", description=f"{stage.prefix}: {description}")
    pipeline.stacks[part] = stack
    return stack


def configure(app: App) -> None:
    """Once per app, before any stack: feature flags, tags and the cdk-nag gate."""
    # Grant S3 log delivery through the bucket policy, not ACLs (ACLs stay disabled everywhere).
    app.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
    # Error findings without an acknowledgement fail synthesis (and so `make synth` and the tests).
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def build(app: App, stage: Stage, target: Target = "aws") -> Pipeline:
    """The pipeline for `stage`: one stack per part on AWS, one slim stack on an emulator."""
    p = Pipeline()
    if target == "emulator":
        scope: Construct = _stack(app, stage, "emulator", "the parts an emulator can create", p)
        p.lake = Lake(scope, "Lake", stage=stage)
        p.ingest = Ingest(scope, "Ingest", stage=stage, lake=p.lake, with_firehose=False)
        p.processing = Processing(
            scope, "Processing", stage=stage, ingest=p.ingest, lake=p.lake, emulator=True
        )
    elif target == "localstack":
        scope = _stack(app, stage, "localstack", "the parts LocalStack creates without Docker", p)
        p.lake = Lake(scope, "Lake", stage=stage)
        p.ingest = Ingest(scope, "Ingest", stage=stage, lake=p.lake, with_firehose=False)
        p.processing = Processing(
            scope, "Processing", stage=stage, ingest=p.ingest, lake=p.lake, with_functions=False
        )
        p.monitoring = Monitoring(scope, "Monitoring", stage=stage)
    elif target == "aws":
        p.lake = Lake(_stack(app, stage, "lake", "S3 data lake and access logs", p), "Lake", stage=stage)
        p.ingest = Ingest(
            _stack(app, stage, "ingest", "Kinesis streams and raw archive", p),
            "Ingest",
            stage=stage,
            lake=p.lake,
        )
        p.processing = Processing(
            _stack(app, stage, "processing", "enricher and lake-writer Lambdas", p),
            "Processing",
            stage=stage,
            ingest=p.ingest,
            lake=p.lake,
        )
        p.analytics = Analytics(
            _stack(app, stage, "analytics", "Managed Flink analytics", p),
            "Analytics",
            stage=stage,
            ingest=p.ingest,
            lake=p.lake,
        )
        p.warehouse = Warehouse(
            _stack(app, stage, "warehouse", "Glue, Athena and Redshift Serverless", p),
            "Warehouse",
            stage=stage,
            ingest=p.ingest,
            lake=p.lake,
        )
        p.monitoring = Monitoring(
            _stack(app, stage, "monitoring", "alarms and dashboard", p), "Monitoring", stage=stage
        )
        # The lake writer registers partitions in the warehouse's Glue tables: they must exist first.
        p.stacks["processing"].add_dependency(p.stacks["warehouse"])
    else:
        raise ValueError(f"unknown target {target!r}: use aws, emulator or localstack")
    if target == "aws":
        # Not on the emulator: moto 5.2's CloudFormation crashes on tagged KMS keys (it expects
        # TagKey/TagValue), fails the change set with a 500 and still reports CREATE_COMPLETE.
        for stack in p.stacks.values():
            Tags.of(stack).add("pipeline", "real-time-analytics")
            Tags.of(stack).add("pipeline:stage", stage.name)
    return p
