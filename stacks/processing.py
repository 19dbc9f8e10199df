"""The enricher and lake-writer Lambdas, their Kinesis event source mappings, the DLQ and its redrive queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from pipeline.config import EventSourceMapping, Stage
from pipeline.lake import layout
from stacks.common import FunctionSpec, acknowledge, lake_catalog_arns, python_function
from stacks.ingest import Ingest
from stacks.lake import Lake

ENRICHER = FunctionSpec("enricher", "enricher", memory_mb=1024, timeout=Duration.seconds(60))
LAKE_WRITER = FunctionSpec("lake-writer", "lake_writer", memory_mb=2048, timeout=Duration.seconds(300))
FUNCTIONS = (ENRICHER, LAKE_WRITER)
XRAY = "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) have no resource-level permissions."


def kinesis_source(
    stream: object, mapping: EventSourceMapping, on_failure: sqs.IQueue
) -> sources.KinesisEventSource:
    """The event source with exactly the settings the local shard poller reads from `mapping`."""
    return sources.KinesisEventSource(
        stream,  # type: ignore[arg-type]
        starting_position=lambda_.StartingPosition[mapping.starting_position],
        batch_size=mapping.batch_size,
        max_batching_window=Duration.seconds(mapping.max_batching_window_s),
        parallelization_factor=mapping.parallelization_factor,
        retry_attempts=mapping.retry_attempts,
        bisect_batch_on_error=mapping.bisect_on_error,
        max_record_age=Duration.seconds(mapping.max_record_age_s),
        report_batch_item_failures=mapping.report_batch_item_failures,
        on_failure=sources.SqsDlq(on_failure),
    )


def partition_registration(stack: Stack, stage: Stage) -> iam.PolicyStatement:
    """The lake writer registers the partitions it writes (`pipeline.lake.catalog`): Spectrum has no
    partition projection. GetTable for the storage descriptor it copies; nothing else, no other table."""
    return iam.PolicyStatement(
        actions=["glue:BatchCreatePartition", "glue:GetTable"],
        resources=lake_catalog_arns(stack, stage),
    )


def _default_policy(function: lambda_.Function) -> IConstruct:
    """The CfnPolicy CDK's grants write into: where wildcard findings on a function's role land."""
    return function.role.node.find_child("DefaultPolicy").node.default_child  # type: ignore[union-attr,return-value]


class Processing(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        ingest: Ingest,
        lake: Lake,
        emulator: bool = False,
        with_functions: bool = True,
    ) -> None:
        """`emulator=True`: empty dependency layers (an emulator never runs the code) and no pseudonym
        key secret (moto's CloudFormation cannot create one; the local stage uses its dev key).
        `with_functions=False`: the queues only, for an emulator that cannot create Lambda functions."""
        super().__init__(scope, construct_id)
        self.with_dependency_layers = not emulator
        self.queue_key = kms.Key(
            self,
            "QueueKey",
            alias=f"alias/{stage.prefix}-queues",
            enable_key_rotation=True,
            description=f"{stage.prefix}: DLQ, mapping failures, pseudonym key secret",
            removal_policy=RemovalPolicy.DESTROY,
        )
        retention = Duration.days(stage.dlq_retention_days)
        self.dlq_redrive = self._queue("DlqRedrive", stage.dlq_redrive_name, retention, dead_letter=None)
        dead_letter = sqs.DeadLetterQueue(
            queue=self.dlq_redrive, max_receive_count=stage.dlq_max_receive_count
        )
        self.dlq = self._queue("Dlq", stage.dlq_name, retention, dead_letter)
        self.on_failure = self._queue("MappingFailures", stage.on_failure_queue_name, retention, dead_letter)

        self.pseudonym_key: secretsmanager.Secret | None = None
        self.functions: dict[str, lambda_.Function] = {}
        if not with_functions:
            return
        if not emulator:
            self.pseudonym_key = self._pseudonym_key(stage)

        enricher = self._function(
            ENRICHER,
            stage,
            {
                "ENRICHED_STREAM_NAME": stage.stream("events-enriched"),
                "DLQ_URL": self.dlq.queue_url,
                "FUTURE_TOLERANCE_S": str(stage.future_tolerance_s),
                "PSEUDONYM_KEY_SECRET": stage.pseudonym_key_secret,
            },
        )
        ingest.streams["events-raw"].grant_read(enricher)
        ingest.streams["events-enriched"].grant_write(enricher)
        self.dlq.grant_send_messages(enricher)
        if self.pseudonym_key:
            self.pseudonym_key.grant_read(enricher)
        enricher.add_event_source(
            kinesis_source(ingest.streams["events-raw"], stage.enricher_mapping, self.on_failure)
        )

        lake_writer = self._function(LAKE_WRITER, stage, {})  # the bucket comes from the stage
        for logical in ("events-enriched", "metrics"):
            ingest.streams[logical].grant_read(lake_writer)
            lake_writer.add_event_source(
                kinesis_source(ingest.streams[logical], stage.lake_writer_mapping, self.on_failure)
            )
        bucket = lake.bucket_in(self)
        bucket.grant_read_write(lake_writer, f"{layout.CURATED_EVENTS}*")
        bucket.grant_read_write(lake_writer, f"{layout.CURATED_METRICS}*")
        bucket.grant_read_write(lake_writer, f"{layout.BAD}*")
        lake_writer.add_to_role_policy(partition_registration(Stack.of(self), stage))
        read_write = "CDK's grantReadWrite action group, on the lake zones the writer owns only."
        acknowledge(
            _default_policy(enricher),
            {
                "AwsSolutions-IAM5[Resource::*]": XRAY,
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "Producing to events-enriched: its key only.",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": "CDK's encrypt grant on the events-enriched key only.",
            },
        )
        acknowledge(
            _default_policy(lake_writer),
            {
                **{
                    f"AwsSolutions-IAM5[Action::{action}]": read_write
                    for action in (
                        "s3:Abort*",
                        "s3:DeleteObject*",
                        "s3:GetBucket*",
                        "s3:GetObject*",
                        "s3:List*",
                    )
                },
                "AwsSolutions-IAM5[Resource::*]": XRAY,
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "Encrypting new objects with the lake key only.",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": "CDK's grant on the lake key only.",
                **{
                    lake.object_arn_finding(
                        zone
                    ): "Object keys are derived per Kinesis batch (stream, shard, "
                    "sequence range), so the writer owns every object of its zone."
                    for zone in (layout.CURATED_EVENTS, layout.CURATED_METRICS, layout.BAD)
                },
            },
        )

    def _pseudonym_key(self, stage: Stage) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            "PseudonymKey",
            secret_name=stage.pseudonym_key_secret,
            description="HMAC key that pseudonymises user_id and ip in the enricher",
            encryption_key=self.queue_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        acknowledge(
            secret,
            {
                "AwsSolutions-SMG4": "Rotating the pseudonymisation key changes every pseudonym and breaks "
                "joins across time; re-keying is a planned migration, not a schedule."
            },
        )

        return secret

    def _queue(
        self, construct_id: str, name: str, retention: Duration, dead_letter: sqs.DeadLetterQueue | None
    ) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            queue_name=name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            retention_period=retention,
            visibility_timeout=Duration.minutes(5),
            dead_letter_queue=dead_letter,
        )

    def _function(self, spec: FunctionSpec, stage: Stage, environment: dict[str, str]) -> lambda_.Function:
        function = python_function(self, spec, stage, environment, self.with_dependency_layers)
        self.functions[spec.logical] = function
        return function
