"""Glue catalog and Schema Registry, the Athena workgroup and Redshift Serverless with streaming ingestion."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import CustomResource, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_redshiftserverless as redshift
from aws_cdk import custom_resources as cr
from constructs import Construct

from pipeline.config import REPO_ROOT, Stage
from pipeline.contract import contract
from pipeline.lake.catalog import PARQUET_INPUT_FORMAT, PARQUET_OUTPUT_FORMAT, PARQUET_SERDE
from pipeline.lake.tables import LakeTable, lake_tables
from pipeline.warehouse.ddl import render
from pipeline.warehouse.redshift_sql import resource_properties, statements_hash
from stacks.common import FunctionSpec, acknowledge, lake_catalog_arns, python_function
from stacks.ingest import Ingest
from stacks.lake import Lake

WAREHOUSE_DIR = REPO_ROOT / "warehouse"
REDSHIFT_DATABASE = "dev"
CURATED_ZONE = "curated/"  # curated/events/ and curated/metrics/: what Spectrum reads
# Redshift Serverless wants subnets in three Availability Zones.
REDSHIFT_AZS = 3
# The custom resource applying warehouse/redshift/*.sql: one function for the Provider framework's
# onEvent and isComplete (see pipeline.warehouse.redshift_sql for why one).
REDSHIFT_SQL = FunctionSpec(
    "redshift-sql",
    "redshift_sql",
    memory_mb=256,
    timeout=Duration.seconds(60),
    dependency_layer=False,
    tracing=False,
)
# How often the waiter asks Redshift, and how long the DDL may take (a cold workgroup resumes first).
SQL_QUERY_INTERVAL = Duration.seconds(15)
SQL_TOTAL_TIMEOUT = Duration.minutes(30)


def named_query_files() -> list[Path]:
    """Athena named queries: warehouse/*.sql and warehouse/athena/**/*.sql, sorted."""
    return sorted([*WAREHOUSE_DIR.glob("*.sql"), *WAREHOUSE_DIR.glob("athena/**/*.sql")])


def redshift_statements(stage: Stage, role_arn: str) -> list[str]:
    """The statements of warehouse/redshift/*.sql in file order, rendered for `stage`.

    Split on `;` at a line end: the streaming-ingestion DDL has no procedural bodies, and the Data
    API's BatchExecuteStatement takes one statement per list item.
    """
    statements: list[str] = []
    for file in sorted((WAREHOUSE_DIR / "redshift").glob("*.sql")):
        text = render(file.read_text(), stage, redshift_role_arn=role_arn)
        for part in re.split(r";[ \t]*(?:\n|$)", text):
            code = [line for line in part.splitlines() if line.strip() and not line.strip().startswith("--")]
            if code:
                statements.append(part.strip())
    return statements


def _namespace_call(stage: Stage) -> cr.AwsSdkCall:
    return cr.AwsSdkCall(
        service="redshift-serverless",
        action="GetNamespace",
        parameters={"namespaceName": stage.redshift_namespace},
        physical_resource_id=cr.PhysicalResourceId.of(f"{stage.redshift_namespace}-admin-secret"),
        output_paths=["namespace.adminPasswordSecretArn"],
    )


class Warehouse(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: Stage, ingest: Ingest, lake: Lake
    ) -> None:
        super().__init__(scope, construct_id)
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Stack.of(self).account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=stage.glue_database, description=f"{stage.prefix}: the data lake's curated tables"
            ),
        )
        for table in lake_tables():
            self._table(table, stage, lake).node.add_dependency(self.database)
        self._schema_registry(stage)
        self.workgroup = self._athena(stage, lake)
        self._redshift(stage, ingest, lake)

    def _table(self, table: LakeTable, stage: Stage, lake: Lake) -> glue.CfnTable:
        return glue.CfnTable(
            self,
            f"Table-{table.name}",
            catalog_id=Stack.of(self).account,
            database_name=stage.glue_database,
            table_input=glue.CfnTable.TableInputProperty(
                name=table.name,
                description=table.comment,
                table_type="EXTERNAL_TABLE",
                parameters={**table.table_properties(stage.lake_bucket), "EXTERNAL": "TRUE"},
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name=p.name, type="string") for p in table.partitions
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=table.location(stage.lake_bucket),
                    input_format=PARQUET_INPUT_FORMAT,
                    output_format=PARQUET_OUTPUT_FORMAT,
                    serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=PARQUET_SERDE),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=c.name, type=c.type, comment=(c.comment or None))
                        for c in table.columns
                    ],
                ),
            ),
        )

    def _schema_registry(self, stage: Stage) -> None:
        """One schema per event type; every version registered in order, in its compatibility mode."""
        the_contract = contract()
        registry = glue.CfnRegistry(
            self, "Registry", name=stage.schema_registry, description=f"{stage.prefix}: event schemas"
        )
        for event_type in the_contract.event_types:
            chain = the_contract.versions[event_type]
            schema = glue.CfnSchema(
                self,
                f"Schema-{event_type}",
                name=event_type,
                registry=glue.CfnSchema.RegistryProperty(arn=registry.attr_arn),
                data_format="AVRO",
                compatibility=the_contract.mode(event_type),
                schema_definition=chain[1].text,
                description=f"{event_type} events (envelope + payload)",
            )
            previous: glue.CfnSchema | glue.CfnSchemaVersion = schema
            for version in sorted(chain)[1:]:
                registered = glue.CfnSchemaVersion(
                    self,
                    f"Schema-{event_type}-v{version}",
                    schema=glue.CfnSchemaVersion.SchemaProperty(schema_arn=schema.attr_arn),
                    schema_definition=chain[version].text,
                )
                # Versions must land in order: each one is checked against its predecessors
                # (the first one already waits for its schema through the schema ARN).
                if isinstance(previous, glue.CfnSchemaVersion):
                    registered.node.add_dependency(previous)
                previous = registered

    def _athena(self, stage: Stage, lake: Lake) -> athena.CfnWorkGroup:
        workgroup = athena.CfnWorkGroup(
            self,
            "AthenaWorkgroup",
            name=stage.athena_workgroup,
            description=f"{stage.prefix}: queries over the lake",
            recursive_delete_option=stage.name != "prod",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=100 * 1024**3,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{stage.lake_bucket}/athena-results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=lake.key.key_arn
                    ),
                ),
            ),
        )
        for file in named_query_files():
            athena.CfnNamedQuery(
                self,
                f"Query-{file.relative_to(WAREHOUSE_DIR).with_suffix('').as_posix().replace('/', '-')}",
                name=file.stem,
                database=stage.glue_database,
                work_group=workgroup.ref,
                query_string=render(file.read_text(), stage),
                description=f"warehouse/{file.relative_to(WAREHOUSE_DIR).as_posix()}",
            )
        return workgroup

    def _redshift(self, stage: Stage, ingest: Ingest, lake: Lake) -> None:
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            # Isolated subnets only: Redshift needs no internet, and the Data API is reached outside the VPC.
            nat_gateways=0,
            availability_zones=[Fn.select(i, Fn.get_azs()) for i in range(REDSHIFT_AZS)],
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="redshift", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                )
            ],
            flow_logs={"rejected": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.REJECT)},
        )
        security_group = ec2.SecurityGroup(
            self,
            "RedshiftSg",
            vpc=self.vpc,
            description="Redshift Serverless workgroup",
            allow_all_outbound=False,
        )
        streaming_role = iam.Role(
            self,
            "StreamingIngestionRole",
            assumed_by=iam.ServicePrincipal("redshift.amazonaws.com"),
            description="Redshift streaming ingestion from events-enriched and metrics",
        )
        for logical in ("events-enriched", "metrics"):
            ingest.streams[logical].grant_read(streaming_role)
        namespace = redshift.CfnNamespace(
            self,
            "Namespace",
            namespace_name=stage.redshift_namespace,
            db_name=REDSHIFT_DATABASE,
            admin_username="admin",
            manage_admin_password=True,
            admin_password_secret_kms_key_id=lake.key.key_arn,
            kms_key_id=lake.key.key_arn,
            iam_roles=[streaming_role.role_arn],
            default_iam_role_arn=streaming_role.role_arn,
            log_exports=["userlog", "connectionlog", "useractivitylog"],
        )
        namespace.apply_removal_policy(
            RemovalPolicy.RETAIN if stage.name == "prod" else RemovalPolicy.DESTROY
        )
        workgroup = redshift.CfnWorkgroup(
            self,
            "RedshiftWorkgroup",
            workgroup_name=stage.redshift_namespace,
            namespace_name=stage.redshift_namespace,
            base_capacity=8,
            publicly_accessible=False,
            enhanced_vpc_routing=True,
            subnet_ids=[s.subnet_id for s in self.vpc.isolated_subnets],
            security_group_ids=[security_group.security_group_id],
        )
        workgroup.node.add_dependency(namespace)
        self._spectrum_access(streaming_role, stage, lake)
        statements = redshift_statements(stage, streaming_role.role_arn)
        if statements:
            self._apply_sql(stage, workgroup, namespace, lake, streaming_role, statements)

    def _spectrum_access(self, role: iam.Role, stage: Stage, lake: Lake) -> None:
        """Redshift Spectrum (the `lake` external schema) reads the Glue tables and the curated/ zone."""
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                ],
                resources=lake_catalog_arns(stack, stage),
            )
        )
        lake.bucket_in(self).grant_read(role, f"{CURATED_ZONE}*")
        acknowledge(
            role.node.find_child("DefaultPolicy").node.default_child,  # type: ignore[arg-type]
            {
                "AwsSolutions-IAM5[Action::s3:GetObject*]": "CDK's grantRead action group, on curated/ only.",
                "AwsSolutions-IAM5[Action::s3:GetBucket*]": "CDK's grantRead action group on the lake bucket.",
                "AwsSolutions-IAM5[Action::s3:List*]": "CDK's grantRead action group on the lake bucket.",
                lake.object_arn_finding(CURATED_ZONE): "Spectrum reads every table of the curated/ zone.",
            },
        )

    def _apply_sql(
        self,
        stage: Stage,
        workgroup: redshift.CfnWorkgroup,
        namespace: redshift.CfnNamespace,
        lake: Lake,
        streaming_role: iam.Role,
        statements: list[str],
    ) -> None:
        """Run the streaming-ingestion DDL through the Data API as the managed admin user, and wait for
        Redshift's verdict: a failing statement fails the deploy (pipeline.warehouse.redshift_sql)."""
        stack = Stack.of(self)
        workgroup_arn = stack.format_arn(
            service="redshift-serverless",
            resource="workgroup",
            resource_name=workgroup.attr_workgroup_workgroup_id,
        )
        # CloudFormation does not return the managed admin secret's ARN; GetNamespace does.
        lookup = cr.AwsCustomResource(
            self,
            "AdminSecretLookup",
            on_create=_namespace_call(stage),
            on_update=_namespace_call(stage),
            install_latest_aws_sdk=False,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["redshift-serverless:GetNamespace"],
                        resources=[namespace.attr_namespace_namespace_arn],
                    )
                ]
            ),
        )
        lookup.node.add_dependency(namespace)
        secret_arn = lookup.get_response_field("namespace.adminPasswordSecretArn")

        function = python_function(self, REDSHIFT_SQL, stage, {})
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["redshift-data:BatchExecuteStatement"], resources=[workgroup_arn])
        )
        # Statement ids are not resources IAM can name: as in AWS's own Data API policies, the
        # function may describe only the statements it ran itself.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["redshift-data:DescribeStatement"],
                resources=["*"],
                conditions={"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[secret_arn])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[lake.key.key_arn])
        )
        acknowledge(
            function.role.node.find_child("DefaultPolicy").node.default_child,  # type: ignore[union-attr,arg-type]
            {
                "AwsSolutions-IAM5[Resource::*]": "redshift-data:DescribeStatement has no resource type; "
                "the statement-owner condition limits it to the statements this function ran."
            },
        )
        provider = cr.Provider(
            self,
            "RedshiftSqlProvider",
            on_event_handler=function,
            is_complete_handler=function,
            query_interval=SQL_QUERY_INTERVAL,
            total_timeout=SQL_TOTAL_TIMEOUT,
            log_group=logs.LogGroup(
                self,
                "RedshiftSqlProviderLogs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=RemovalPolicy.DESTROY,
            ),
            # The framework functions log each request and answer (response URL redacted) instead of
            # the waiter: its execution data holds that URL, and its log delivery needs logs:* on "*".
            framework_lambda_logging_level=lambda_.ApplicationLogLevel.INFO,
            disable_waiter_state_machine_logging=True,
        )
        apply = CustomResource(
            self,
            "StreamingIngestionSql",
            service_token=provider.service_token,
            resource_type="Custom::RedshiftSql",
            properties=resource_properties(
                workgroup=stage.redshift_namespace,
                database=REDSHIFT_DATABASE,
                secret_arn=secret_arn,
                statements=statements,
                # Hashed as resolved (role ARN as `Fn::GetAtt`): token strings vary between synths.
                statements_digest=statements_hash(stack.resolve(statements)),
                statement_name=f"{stage.prefix}-streaming-ingestion",
            ),
        )
        apply.node.add_dependency(workgroup)
        # The external schema and the streaming views read the streams through this role's grants.
        apply.node.add_dependency(streaming_role)
        self._acknowledge_provider(provider, function)
        aws_provider = stack.node.find_child(
            "AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")
        )
        acknowledge(
            aws_provider.node.find_child("ServiceRole"),
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (
                    "The AwsCustomResource provider's AWS managed basic execution policy: writing its own logs only."
                )
            },
        )

    def _acknowledge_provider(self, provider: cr.Provider, function: lambda_.Function) -> None:
        """The CDK Provider framework's own functions and waiter state machine."""
        stack = Stack.of(self)
        invoked = [
            function,
            *(provider.node.find_child(f"framework-{f}") for f in ("isComplete", "onTimeout")),
        ]
        invoke = "The framework invokes one function, any of its versions (`<arn>:*`), and nothing else."
        acknowledge(
            provider,
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (
                    "The Provider framework functions' AWS managed basic execution policy: writing their own logs only."
                ),
                **{
                    f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.node.default_child)}.Arn>:*]": invoke  # type: ignore[arg-type]
                    for fn in invoked
                },
                "AwsSolutions-SF1": "Waiter logging is off: its execution data holds CloudFormation's pre-signed "
                "response URL; the framework functions log every request and answer (URL redacted) instead.",
                "AwsSolutions-SF2": "The framework's waiter only polls one function; the Provider construct "
                "offers no X-Ray tracing for it.",
            },
        )
