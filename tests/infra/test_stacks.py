"""The synthesised templates: security defaults, stage settings, alarm thresholds, least privilege."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from aws_cdk.assertions import Match

from pipeline.config import REPO_ROOT, STREAMS, EventSourceMapping, Stage, stage
from pipeline.contract import contract
from pipeline.lake.catalog import table_input
from pipeline.lake.tables import lake_tables
from stacks import alarm_thresholds as t
from stacks.app import EMULATOR_UNSUPPORTED
from stacks.assembly import Assembly as Synthesised
from stacks.ingest import RAW_ARCHIVER
from stacks.lake import ZONES
from stacks.processing import ENRICHER, LAKE_WRITER
from stacks.warehouse import named_query_files

AWS_STAGES = ("prod", "dev")  # as in conftest's session app
EMULATOR_STAGE = "local"


def _one(resources: Mapping[str, Any]) -> dict[str, Any]:
    assert len(resources) == 1, sorted(resources)
    return dict(next(iter(resources.values()))["Properties"])


def _by_name(resources: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {r["Properties"][key]: r["Properties"] for r in resources.values()}


def test_cdk_nag_has_no_unacknowledged_findings(synthesised: Synthesised) -> None:
    findings = [
        (v["ruleName"], c["constructPath"])
        for report in synthesised.validation_report()["pluginReports"]
        for v in report["violations"]
        for c in v["violatingConstructs"]
    ]
    assert findings == []


def test_cfn_lint_reports_no_errors_on_any_template(synthesised: Synthesised) -> None:
    templates = sorted(str(p) for p in synthesised.outdir.glob("*.template.json"))
    assert len(templates) == 2 * 6 + 1
    run = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "parseable", *templates], capture_output=True, text=True
    )
    errors = [line for line in run.stdout.splitlines() if ":E" in line]
    assert errors == []


def test_streams_have_stage_names_mode_retention_and_own_kms_key(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "ingest")
    streams = _by_name(template.find_resources("AWS::Kinesis::Stream"), "Name")
    assert sorted(streams) == sorted(aws_stage.stream(s) for s in STREAMS)
    keys = {json.dumps(p["StreamEncryption"]["KeyId"]) for p in streams.values()}
    assert len(keys) == 3  # one customer-managed key per stream
    for logical in STREAMS:
        props = streams[aws_stage.stream(logical)]
        assert props["StreamEncryption"]["EncryptionType"] == "KMS"
        assert props["RetentionPeriodHours"] == aws_stage.retention_hours
        assert props["StreamModeDetails"] == {"StreamMode": aws_stage.kinesis_mode}
        if aws_stage.kinesis_mode == "PROVISIONED":
            assert props["ShardCount"] == aws_stage.shards[logical]
        else:
            assert "ShardCount" not in props
    template.all_resources_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def _mapping_props(mapping: EventSourceMapping) -> dict[str, Any]:
    return {
        "BatchSize": mapping.batch_size,
        "MaximumBatchingWindowInSeconds": mapping.max_batching_window_s,
        "StartingPosition": mapping.starting_position,
        "ParallelizationFactor": mapping.parallelization_factor,
        "MaximumRetryAttempts": mapping.retry_attempts,
        "BisectBatchOnFunctionError": mapping.bisect_on_error,
        "MaximumRecordAgeInSeconds": mapping.max_record_age_s,
        "FunctionResponseTypes": ["ReportBatchItemFailures"]
        if mapping.report_batch_item_failures
        else Match.absent(),
    }


def test_event_source_mappings_use_exactly_the_local_mapping_settings(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "processing")
    functions = template.find_resources("AWS::Lambda::Function")
    by_name = {props["Properties"]["FunctionName"]: logical_id for logical_id, props in functions.items()}
    queues = template.find_resources("AWS::SQS::Queue")
    on_failure = next(
        k for k, v in queues.items() if v["Properties"]["QueueName"] == aws_stage.on_failure_queue_name
    )
    expected = {
        ENRICHER.logical: (aws_stage.enricher_mapping, 1),
        LAKE_WRITER.logical: (aws_stage.lake_writer_mapping, 2),
    }
    for logical, (mapping, count) in expected.items():
        found = template.find_resources(
            "AWS::Lambda::EventSourceMapping",
            {
                "Properties": {
                    **_mapping_props(mapping),
                    "FunctionName": {"Ref": by_name[aws_stage.function(logical)]},
                    "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [on_failure, "Arn"]}}},
                }
            },
        )
        assert len(found) == count, logical
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 3)


def test_queues_are_kms_encrypted_tls_only_with_redrive_and_retention(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "processing")
    queues = _by_name(template.find_resources("AWS::SQS::Queue"), "QueueName")
    assert sorted(queues) == sorted(
        [aws_stage.dlq_name, aws_stage.on_failure_queue_name, aws_stage.dlq_redrive_name]
    )
    for props in queues.values():
        assert "KmsMasterKeyId" in props
        assert props["MessageRetentionPeriod"] == aws_stage.dlq_retention_days * 86400
    for name in (aws_stage.dlq_name, aws_stage.on_failure_queue_name):
        assert queues[name]["RedrivePolicy"]["maxReceiveCount"] == aws_stage.dlq_max_receive_count
    assert "RedrivePolicy" not in queues[aws_stage.dlq_redrive_name]
    template.resource_count_is("AWS::SQS::QueuePolicy", 3)
    template.all_resources_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )


def test_lambdas_run_python_313_with_layer_tracing_and_stage(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    functions = _by_name(
        synthesised.resources(aws_stage.name, "processing", "AWS::Lambda::Function"), "FunctionName"
    )
    assert sorted(functions) == sorted(aws_stage.function(s.logical) for s in (ENRICHER, LAKE_WRITER))
    for spec in (ENRICHER, LAKE_WRITER):
        props = functions[aws_stage.function(spec.logical)]
        assert props["Runtime"] == "python3.13"
        assert props["Handler"] == "handler.handler"
        assert props["Timeout"] == spec.timeout.to_seconds()
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert len(props["Layers"]) == 1
        assert props["Environment"]["Variables"]["PIPELINE_STAGE"] == aws_stage.name
    enricher_env = functions[aws_stage.function("enricher")]["Environment"]["Variables"]
    assert enricher_env["ENRICHED_STREAM_NAME"] == aws_stage.stream("events-enriched")
    assert enricher_env["PSEUDONYM_KEY_SECRET"] == aws_stage.pseudonym_key_secret


def test_lake_bucket_is_private_tls_only_kms_encrypted_logged_with_zone_lifecycle(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "lake")
    buckets = _by_name(template.find_resources("AWS::S3::Bucket"), "BucketName")
    lake = buckets[aws_stage.lake_bucket]
    assert (
        lake["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "SSEAlgorithm"
        ]
        == "aws:kms"
    )
    access_logs = next(
        k
        for k, v in template.find_resources("AWS::S3::Bucket").items()
        if v["Properties"]["BucketName"] == aws_stage.access_log_bucket
    )
    assert lake["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": access_logs},
        "LogFilePrefix": f"{aws_stage.lake_bucket}/",
    }
    for props in buckets.values():
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    rules = {r["Id"]: r for r in lake["LifecycleConfiguration"]["Rules"]}
    for zone in ZONES:
        rule = rules[zone.prefix.rstrip("/")]
        assert rule["Prefix"] == zone.prefix
        if zone.expire_after_days:
            assert rule["ExpirationInDays"] == zone.expire_after_days
    assert {"raw", "curated", "late", "bad"} <= set(rules)
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_firehose_archives_raw_stream_compressed_with_error_prefix(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    props = _one(synthesised.resources(aws_stage.name, "ingest", "AWS::KinesisFirehose::DeliveryStream"))
    assert props["DeliveryStreamName"] == aws_stage.raw_archive_stream
    s3 = props["ExtendedS3DestinationConfiguration"]
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["Prefix"].startswith("raw/year=!{timestamp:yyyy}/")
    assert s3["ErrorOutputPrefix"].startswith("bad/firehose/")
    assert "KMSEncryptionConfig" in s3["EncryptionConfiguration"]
    assert props["DeliveryStreamType"] == "KinesisStreamAsSource"


def test_firehose_wraps_records_into_raw_lines_with_the_archiver_lambda_only(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "ingest")
    functions = template.find_resources("AWS::Lambda::Function")
    [(archiver_id, archiver)] = functions.items()
    assert archiver["Properties"]["FunctionName"] == aws_stage.function(RAW_ARCHIVER.logical)
    assert archiver["Properties"]["Runtime"] == "python3.13"
    assert archiver["Properties"]["MemorySize"] == RAW_ARCHIVER.memory_mb == 256
    assert "Layers" not in archiver["Properties"]  # standard library only
    assert "TracingConfig" not in archiver["Properties"]
    props = _one(template.find_resources("AWS::KinesisFirehose::DeliveryStream"))
    [processor] = props["ExtendedS3DestinationConfiguration"]["ProcessingConfiguration"]["Processors"]
    assert processor["Type"] == "Lambda"  # not AppendDelimiterToRecord: binary records hold newlines
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert parameters["LambdaArn"] == {"Fn::GetAtt": [archiver_id, "Arn"]}
    # Firehose's own defaults, pinned: a response must stay under Lambda's 6 MB payload limit.
    assert (parameters["BufferSizeInMBs"], parameters["BufferIntervalInSeconds"]) == ("1", "60")
    assert "NumberOfRetries" not in parameters
    # Least privilege: the archiver writes its logs and nothing else; only Firehose may invoke it.
    role_id = archiver["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    assert json.dumps(role["ManagedPolicyArns"]).endswith('service-role/AWSLambdaBasicExecutionRole"]]}]')
    policies = template.find_resources("AWS::IAM::Policy").values()
    assert not [p for p in policies if {"Ref": role_id} in p["Properties"]["Roles"]]
    invokers = [
        p
        for p in policies
        for st in p["Properties"]["PolicyDocument"]["Statement"]
        if st["Action"] == "lambda:InvokeFunction"
    ]
    assert [p["Properties"]["Roles"] for p in invokers] == [
        [
            {
                "Ref": next(
                    k for k in template.find_resources("AWS::IAM::Role") if k.startswith("IngestRawArchiveS3")
                )
            }
        ]
    ]


def test_flink_application_follows_stage_settings(synthesised: Synthesised, aws_stage: Stage) -> None:
    props = _one(synthesised.resources(aws_stage.name, "analytics", "AWS::KinesisAnalyticsV2::Application"))
    assert props["RuntimeEnvironment"] == "FLINK-1_20"
    assert props["ApplicationName"] == aws_stage.flink_application
    config = props["ApplicationConfiguration"]
    flink = config["FlinkApplicationConfiguration"]
    assert flink["ParallelismConfiguration"]["Parallelism"] == aws_stage.flink.parallelism
    assert flink["ParallelismConfiguration"]["AutoScalingEnabled"] == aws_stage.flink.autoscaling
    assert flink["CheckpointConfiguration"]["CheckpointingEnabled"] is True
    assert (
        flink["CheckpointConfiguration"]["CheckpointInterval"] == aws_stage.flink.checkpoint_interval_s * 1000
    )
    groups = {
        g["PropertyGroupId"]: g["PropertyMap"] for g in config["EnvironmentProperties"]["PropertyGroups"]
    }
    assert groups["kinesis.analytics.flink.run.options"]["python"] == "main.py"
    assert groups["kinesis.analytics.flink.run.options"]["jarfile"].startswith("lib/")
    assert groups["pipeline"]["stage"] == aws_stage.name


def test_glue_tables_and_registry_come_from_the_avro_contract(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "warehouse")
    tables = {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]
        for r in template.find_resources("AWS::Glue::Table").values()
    }
    expected = {t.name: t for t in lake_tables()}
    assert sorted(tables) == sorted(expected)
    for name, table in expected.items():
        columns = tables[name]["TableInput"]["StorageDescriptor"]["Columns"]
        assert [(c["Name"], c["Type"]) for c in columns] == [(c.name, c.type) for c in table.columns]
        assert tables[name]["DatabaseName"] == aws_stage.glue_database
        assert tables[name]["TableInput"]["Parameters"]["projection.enabled"] == "true"
    c = contract()
    schemas = {r["Properties"]["Name"]: r for r in template.find_resources("AWS::Glue::Schema").values()}
    assert sorted(schemas) == c.event_types
    for event_type, schema in schemas.items():
        assert schema["Properties"]["Compatibility"] == c.mode(event_type)
        assert schema["Properties"]["SchemaDefinition"] == c.versions[event_type][1].text
    versions = template.find_resources("AWS::Glue::SchemaVersion")
    assert len(versions) == sum(len(chain) - 1 for chain in c.versions.values())
    definitions = {v["Properties"]["SchemaDefinition"] for v in versions.values()}
    assert definitions == {sv.text for chain in c.versions.values() for n, sv in chain.items() if n > 1}
    # Each version waits for its predecessor (v2 for its schema, through the ARN), so the registry
    # checks them in order.
    ordered = [v for v in versions.values() if "DependsOn" in v]
    assert len(ordered) == sum(max(0, len(chain) - 2) for chain in c.versions.values())
    for version in versions.values():
        assert "Fn::GetAtt" in version["Properties"]["Schema"]["SchemaArn"]


def test_glue_tables_are_what_the_local_stack_creates(synthesised: Synthesised, aws_stage: Stage) -> None:
    """`pipeline up` creates the tables on moto (its CloudFormation skips Glue) from `table_input`."""
    template = synthesised.template(aws_stage.name, "warehouse")
    tables = {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]["TableInput"]
        for r in template.find_resources("AWS::Glue::Table").values()
    }
    assert tables == {t.name: table_input(t, aws_stage.lake_bucket) for t in lake_tables()}


def test_lake_writer_registers_partitions_of_the_lake_tables_only(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "processing")
    statements = [
        s
        for k, p in template.find_resources("AWS::IAM::Policy").items()
        if k.startswith("Processinglakewriter")
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    [glue] = [s for s in statements if any(a.startswith("glue:") for a in _list(s["Action"]))]
    assert sorted(_list(glue["Action"])) == ["glue:BatchCreatePartition", "glue:GetTable"]
    resources = [json.dumps(r) for r in glue["Resource"]]
    db = aws_stage.glue_database
    assert [r.split(":")[-1].rstrip('"]}') for r in resources] == [
        "catalog",
        f"database/{db}",
        *(f"table/{db}/{t.name}" for t in lake_tables()),
    ]
    # The tables exist before the lake writer runs.
    processing = synthesised.pipelines[aws_stage.name].stacks["processing"]
    assert synthesised.pipelines[aws_stage.name].stacks["warehouse"] in processing.dependencies


def test_athena_results_and_redshift_are_encrypted_and_private(
    synthesised: Synthesised, aws_stage: Stage
) -> None:
    template = synthesised.template(aws_stage.name, "warehouse")
    workgroup = _one(template.find_resources("AWS::Athena::WorkGroup"))
    config = workgroup["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    queries = template.find_resources("AWS::Athena::NamedQuery")
    assert len(queries) == len(named_query_files()) > 0
    for query in queries.values():
        assert "${lake_bucket}" not in query["Properties"]["QueryString"]
        assert "${glue_database}" not in query["Properties"]["QueryString"]
    namespace = _one(template.find_resources("AWS::RedshiftServerless::Namespace"))
    assert namespace["ManageAdminPassword"] is True
    assert "KmsKeyId" in namespace and "AdminPasswordSecretKmsKeyId" in namespace
    redshift = _one(template.find_resources("AWS::RedshiftServerless::Workgroup"))
    assert redshift["PubliclyAccessible"] is False
    assert len(redshift["SubnetIds"]) == 3
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)


def test_sns_alarm_topic_is_kms_encrypted(synthesised: Synthesised, aws_stage: Stage) -> None:
    topic = _one(synthesised.resources(aws_stage.name, "monitoring", "AWS::SNS::Topic"))
    assert topic["TopicName"] == aws_stage.alarm_topic
    assert "KmsMasterKeyId" in topic


def _alarms(synthesised: Synthesised, stage_name: str) -> dict[str, dict[str, Any]]:
    alarms = synthesised.resources(stage_name, "monitoring", "AWS::CloudWatch::Alarm")
    prefix = f"{stage(stage_name).prefix}-"
    return {r["Properties"]["AlarmName"].removeprefix(prefix): r["Properties"] for r in alarms.values()}


EXPECTED_THRESHOLDS = {
    **{f"iterator-age.{s}": (t.ITERATOR_AGE_MS, "GreaterThanThreshold") for s in STREAMS},
    **{f"write-throttled.{s}": (t.WRITE_THROTTLED_RECORDS, "GreaterThanThreshold") for s in STREAMS},
    **{f"read-throttled.{s}": (t.READ_THROTTLED_REQUESTS, "GreaterThanThreshold") for s in STREAMS},
    **{f"put-records-success.{s}": (t.PUT_RECORDS_SUCCESS_MIN, "LessThanThreshold") for s in STREAMS},
    **{f"get-records-success.{s}": (t.GET_RECORDS_SUCCESS_MIN, "LessThanThreshold") for s in STREAMS},
    **{
        f"lambda-errors.{f.logical}": (t.LAMBDA_ERRORS, "GreaterThanThreshold")
        for f in (ENRICHER, LAKE_WRITER)
    },
    **{
        f"lambda-throttles.{f.logical}": (t.LAMBDA_THROTTLES, "GreaterThanThreshold")
        for f in (ENRICHER, LAKE_WRITER)
    },
    **{
        f"lambda-duration.{f.logical}": (f.timeout.to_milliseconds() * 0.8, "GreaterThanThreshold")
        for f in (ENRICHER, LAKE_WRITER)
    },
    **{
        f"lambda-iterator-age.{f.logical}": (t.LAMBDA_ITERATOR_AGE_MS, "GreaterThanThreshold")
        for f in (ENRICHER, LAKE_WRITER)
    },
    "dlq-depth": (t.DLQ_VISIBLE_MESSAGES, "GreaterThanThreshold"),
    "dlq-age": (t.DLQ_OLDEST_MESSAGE_AGE_S, "GreaterThanThreshold"),
    "mapping-failures": (t.MAPPING_FAILURES_VISIBLE, "GreaterThanThreshold"),
    "flink-downtime": (t.FLINK_DOWNTIME_MS, "GreaterThanThreshold"),
    "flink-failed-checkpoints": (t.FLINK_FAILED_CHECKPOINTS, "GreaterThanThreshold"),
    "flink-late-records-dropped": (t.FLINK_LATE_RECORDS_DROPPED, "GreaterThanThreshold"),
    "firehose-freshness": (t.FIREHOSE_FRESHNESS_S, "GreaterThanThreshold"),
}


def test_alarm_thresholds_match_the_one_thresholds_module(synthesised: Synthesised, aws_stage: Stage) -> None:
    alarms = _alarms(synthesised, aws_stage.name)
    assert {
        name: (a["Threshold"], a["ComparisonOperator"]) for name, a in alarms.items()
    } == EXPECTED_THRESHOLDS
    # The streaming-solution values, stated once more so a silent change of the module fails here.
    assert (t.ITERATOR_AGE_MS, t.PUT_RECORDS_SUCCESS_MIN, t.GET_RECORDS_SUCCESS_MIN) == (60_000, 0.95, 0.98)
    assert alarms["lambda-duration.enricher"]["Threshold"] == 48_000  # 80 % of 60 s
    topic = next(iter(synthesised.resources(aws_stage.name, "monitoring", "AWS::SNS::Topic")))
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic}]
    assert (
        alarms["put-records-success.events-raw"]["Metrics"][0]["Expression"] == "IF(total > 0, ok / total, 1)"
    )
    assert '"numLateRecordsDropped"' in json.dumps(alarms["flink-late-records-dropped"])
    assert '"numberOfFailedCheckpoints"' in json.dumps(alarms["flink-failed-checkpoints"])


def test_every_alarm_has_a_runbook_section(synthesised: Synthesised) -> None:
    runbook = (REPO_ROOT / "docs" / "runbook.md").read_text()
    sections = {line.removeprefix("## ").strip() for line in runbook.splitlines() if line.startswith("## ")}
    alarm_kinds = {name.split(".")[0] for name in _alarms(synthesised, "prod")}
    assert alarm_kinds - sections == set()
    assert len(alarm_kinds) == 16


def test_dashboard_covers_every_stage(synthesised: Synthesised, aws_stage: Stage) -> None:
    dashboard = _one(synthesised.resources(aws_stage.name, "monitoring", "AWS::CloudWatch::Dashboard"))
    body = json.dumps(dashboard["DashboardBody"])
    for needle in (
        "IncomingRecords",
        "GetRecords.IteratorAgeMilliseconds",
        *(aws_stage.function(f.logical) for f in (ENRICHER, LAKE_WRITER)),
        aws_stage.dlq_name,
        "numRecordsInPerSecond",
        "millisBehindLatest",
        "DeliveryToS3.DataFreshness",
    ):
        assert needle in body, needle


# Actions that have no resource-level permissions in IAM: `*` is the only possible resource.
RESOURCELESS_ACTIONS = {"cloudwatch:PutMetricData", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# Data API statement ids are not IAM resources either: `*` only with the owner condition (own statements).
OWN_STATEMENTS = {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}


def _policy_statements(synthesised: Synthesised) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for stack_name, template in synthesised.templates.items():
        for logical_id, policy in template.find_resources("AWS::IAM::Policy").items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                out.append((f"{stack_name}/{logical_id}", statement))
    return out


def test_iam_grants_name_their_resources(synthesised: Synthesised) -> None:
    statements = _policy_statements(synthesised)
    assert len(statements) > 20
    star = [
        (where, s["Action"])
        for where, s in statements
        if s["Resource"] == "*"
        and not set(_list(s["Action"])) <= RESOURCELESS_ACTIONS
        and not (s["Action"] == "redshift-data:DescribeStatement" and s.get("Condition") == OWN_STATEMENTS)
    ]
    assert star == []
    kinesis = [s for _, s in statements if any(a.startswith("kinesis:") for a in _list(s["Action"]))]
    assert kinesis and all(s["Resource"] != "*" for s in kinesis)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_enricher_role_reads_raw_writes_enriched_and_nothing_else(synthesised: Synthesised) -> None:
    template = synthesised.template("prod", "processing")
    policies = [
        p
        for k, p in template.find_resources("AWS::IAM::Policy").items()
        if k.startswith("Processingenricher")
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    kinesis = {
        a: json.dumps(s["Resource"])
        for s in statements
        for a in _list(s["Action"])
        if a.startswith("kinesis:")
    }
    assert "events-raw" in kinesis["kinesis:GetRecords"].replace("eventsraw", "events-raw")
    assert "enriched" in kinesis["kinesis:PutRecords"]
    assert "metrics" not in json.dumps(statements)


def test_emulator_target_lists_every_resource_type_it_leaves_out(synthesised: Synthesised) -> None:
    emulator_stack = synthesised.pipelines[EMULATOR_STAGE].stacks["emulator"].stack_name
    emulator_types = {
        r["Type"] for r in synthesised.templates[emulator_stack].to_json()["Resources"].values()
    }
    aws_types = {
        r["Type"]
        for name in AWS_STAGES[:1]
        for s in synthesised.pipelines[name].stacks.values()
        for r in synthesised.templates[s.stack_name].to_json()["Resources"].values()
    }
    assert aws_types - emulator_types == set(EMULATOR_UNSUPPORTED)
    assert {
        "AWS::Kinesis::Stream",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::Lambda::EventSourceMapping",
    } <= (emulator_types)


@pytest.mark.parametrize("stage_name", AWS_STAGES)
def test_stacks_of_a_stage_are_named_after_its_prefix(synthesised: Synthesised, stage_name: str) -> None:
    names = sorted(s.stack_name for s in synthesised.pipelines[stage_name].stacks.values())
    prefix = stage(stage_name).prefix
    assert names == sorted(
        f"{prefix}-{part}"
        for part in ("lake", "ingest", "processing", "analytics", "warehouse", "monitoring")
    )
