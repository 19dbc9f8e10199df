"""Kinesis streams (one customer-managed key each) and the Firehose archive of events-raw into raw/,
each record wrapped into a raw/ line by the raw-archiver Lambda (`pipeline.lake.raw`)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from pipeline.config import STREAMS, Stage
from pipeline.lake import layout
from stacks.common import FunctionSpec, acknowledge, python_function
from stacks.lake import Lake

# Arrival-time partitions, as pipeline.lake.layout.raw_prefix names them for the local stand-in.
RAW_PREFIX = f"{layout.RAW}year=!{{timestamp:yyyy}}/month=!{{timestamp:MM}}/day=!{{timestamp:dd}}/hour=!{{timestamp:HH}}/"
RAW_ERROR_PREFIX = f"{layout.BAD}firehose/!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd/HH}}/"
# Firehose's data transformation: base64-wraps each record into its raw/ line, standard library only.
RAW_ARCHIVER = FunctionSpec(
    "raw-archiver",
    "raw_archiver",
    memory_mb=256,
    timeout=Duration.seconds(60),
    dependency_layer=False,
    tracing=False,
)
# Processor buffering: Firehose's own defaults, stated so they cannot drift to CDK's documented 3 MiB.
# A response is about 16/9 of its input (base64 inside JSON inside base64) plus ~400 bytes a record,
# and must stay under Lambda's 6 MB synchronous payload limit: 3 MiB of small records would not.
RAW_ARCHIVER_BUFFER = Size.mebibytes(1)
RAW_ARCHIVER_INTERVAL = Duration.seconds(60)


class Ingest(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: Stage, lake: Lake, with_firehose: bool = True
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if stage.name == "prod" else RemovalPolicy.DESTROY
        self.keys: dict[str, kms.Key] = {}
        self.streams: dict[str, kinesis.Stream] = {}
        for logical in STREAMS:
            # One key per stream: a consumer's kms:Decrypt grant then opens exactly the streams it reads.
            key = kms.Key(
                self,
                f"{logical}-key",
                alias=f"alias/{stage.stream(logical)}",
                enable_key_rotation=True,
                description=f"Kinesis stream {stage.stream(logical)}",
                removal_policy=removal,
            )
            provisioned = stage.kinesis_mode == "PROVISIONED"
            self.keys[logical] = key
            self.streams[logical] = kinesis.Stream(
                self,
                logical,
                stream_name=stage.stream(logical),
                stream_mode=kinesis.StreamMode.PROVISIONED if provisioned else kinesis.StreamMode.ON_DEMAND,
                shard_count=stage.shards[logical] if provisioned else None,
                retention_period=Duration.hours(stage.retention_hours),
                encryption=kinesis.StreamEncryption.KMS,
                encryption_key=key,
                removal_policy=removal,
            )
            acknowledge(
                self.streams[logical],
                {
                    "AwsSolutions-KDS3": "A customer-managed key per stream (rotated yearly) instead of "
                    "aws/kinesis: key policies and grants then control who reads which stream."
                },
            )
        self.raw_archive: firehose.DeliveryStream | None = None
        if with_firehose:
            self.raw_archive = self._raw_archive(stage, lake)

    def _raw_archive(self, stage: Stage, lake: Lake) -> firehose.DeliveryStream:
        log_group = logs.LogGroup(
            self,
            "RawArchiveLogs",
            log_group_name=f"/aws/kinesisfirehose/{stage.raw_archive_stream}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Not in the emulator stack (no Firehose there): locally pipeline.lake.raw.archive_handler runs
        # behind the local event source mapping instead.
        archiver = python_function(self, RAW_ARCHIVER, stage, {}, with_dependency_layers=False)
        archive = firehose.DeliveryStream(
            self,
            "RawArchive",
            delivery_stream_name=stage.raw_archive_stream,
            source=firehose.KinesisStreamSource(self.streams["events-raw"]),
            destination=firehose.S3Bucket(
                lake.bucket_in(self),
                data_output_prefix=RAW_PREFIX,
                error_output_prefix=RAW_ERROR_PREFIX,
                compression=firehose.Compression.GZIP,
                encryption_key=lake.key,
                buffering_interval=Duration.seconds(300),
                buffering_size=Size.mebibytes(64),
                logging_config=firehose.EnableLogging(log_group),
                # One JSON line per record (base64 data and Kinesis metadata), so replay can split the
                # archive back into exact records: binary records may contain newlines themselves.
                processors=[
                    firehose.LambdaFunctionProcessor(
                        archiver, buffer_size=RAW_ARCHIVER_BUFFER, buffer_interval=RAW_ARCHIVER_INTERVAL
                    )
                ],
            ),
        )
        acknowledge(
            archive,
            {
                "AwsSolutions-KDF1": "A delivery stream reading from Kinesis cannot use its own SSE; "
                "the source stream and the destination bucket are both encrypted with customer-managed keys.",
            },
        )
        # The Firehose L2 always adds a CIDR mapping, used only by Redshift/Splunk destinations.
        Validations.of(Stack.of(self)).acknowledge(
            Acknowledgment(
                id="CloudFormation-Validate::W7001",
                reason="Unused Firehose CIDR mapping from the L2 construct.",
            )
        )
        grant = "Firehose's S3 destination grants read/write on the lake bucket's objects: it writes raw/ "
        grant += "and error objects under bad/firehose/, and checks and aborts its multipart uploads."
        acknowledge(
            archive.node.find_child("S3 Destination Role")
            .node.find_child("DefaultPolicy")
            .node.default_child,  # type: ignore[arg-type]
            {
                **{
                    f"AwsSolutions-IAM5[Action::{action}]": grant
                    for action in (
                        "s3:Abort*",
                        "s3:DeleteObject*",
                        "s3:GetBucket*",
                        "s3:GetObject*",
                        "s3:List*",
                    )
                },
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "Encrypting raw/ objects with the lake key only.",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": "CDK's encrypt grant, on the lake key only.",
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{stage.lake_bucket}/*]": grant,
                f"AwsSolutions-IAM5[Resource::<{_logical_id(archiver)}.Arn>:*]": "CDK's invoke grant for the "
                "transformation Lambda also names its versions and aliases (`<function ARN>:*`): this one "
                "function only.",
            },
        )
        return archive


def _logical_id(construct: Construct) -> str:
    """The CloudFormation logical id of `construct`'s resource, as cdk-nag names it in a finding."""
    stack = Stack.of(construct)
    return str(stack.resolve(stack.get_logical_id(construct.node.default_child)))  # type: ignore[arg-type]
