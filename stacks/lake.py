"""The S3 data lake: one bucket with zones (raw/, curated/, late/, bad/), its access-log bucket and key."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pipeline.config import Stage
from stacks.common import acknowledge


@dataclass(frozen=True)
class Zone:
    prefix: str
    infrequent_access_after_days: int | None
    glacier_after_days: int | None
    expire_after_days: int | None


# Lifecycle per zone. raw/ is the replay source: kept a year, cold after a month.
# curated/ is what Athena and dashboards read: stays warm, never expires.
ZONES = (
    Zone("raw/", infrequent_access_after_days=30, glacier_after_days=90, expire_after_days=365),
    Zone("curated/", infrequent_access_after_days=90, glacier_after_days=None, expire_after_days=None),
    Zone("late/", infrequent_access_after_days=30, glacier_after_days=None, expire_after_days=365),
    Zone("bad/", infrequent_access_after_days=30, glacier_after_days=None, expire_after_days=365),
    Zone("athena-results/", infrequent_access_after_days=None, glacier_after_days=None, expire_after_days=7),
)


class Lake(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: Stage) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        # Buckets of a non-prod stage go with the stack; prod data outlives any stack.
        removal = RemovalPolicy.RETAIN if stage.name == "prod" else RemovalPolicy.DESTROY
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{stage.prefix}-lake",
            enable_key_rotation=True,
            description=f"{stage.prefix}: lake objects, Athena results, Redshift",
            removal_policy=removal,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=stage.access_log_bucket,
            # S3 server access logging can only deliver to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire", expiration=Duration.days(400))],
            removal_policy=removal,
            auto_delete_objects=False,
        )
        acknowledge(
            self.access_logs,
            {"AwsSolutions-S1": "This is the access-log target itself; logging it into itself would loop."},
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=stage.lake_bucket,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{stage.lake_bucket}/",
            lifecycle_rules=[_lifecycle(zone) for zone in ZONES]
            + [
                # The lake writer overwrites objects on retry by design: old versions are not history.
                s3.LifecycleRule(
                    id="noncurrent",
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal,
        )

    def bucket_in(self, scope: Construct) -> s3.IBucket:
        """The lake bucket for a grant from `scope`, referenced by its name.

        By name rather than a cross-stack export, so granted resources read
        `arn:<partition>:s3:::<bucket>/<zone>/*` in every layout (one stack per part, or the single
        emulator stack), and the cdk-nag acknowledgements naming them hold for both.
        """
        return s3.Bucket.from_bucket_attributes(
            scope, "LakeBucketByName", bucket_name=self.stage.lake_bucket, encryption_key=self.key
        )

    def object_arn_finding(self, zone: str) -> str:
        """The cdk-nag finding id of a grant on every object under `zone` of the lake bucket."""
        return f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{self.stage.lake_bucket}/{zone}*]"


def _lifecycle(zone: Zone) -> s3.LifecycleRule:
    transitions = []
    if zone.infrequent_access_after_days is not None:
        transitions.append(
            s3.Transition(
                storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                transition_after=Duration.days(zone.infrequent_access_after_days),
            )
        )
    if zone.glacier_after_days is not None:
        transitions.append(
            s3.Transition(
                storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                transition_after=Duration.days(zone.glacier_after_days),
            )
        )
    return s3.LifecycleRule(
        id=zone.prefix.rstrip("/"),
        prefix=zone.prefix,
        transitions=transitions or None,
        expiration=Duration.days(zone.expire_after_days) if zone.expire_after_days else None,
    )
