"""Alarms over every stage into one KMS-encrypted SNS topic, and one dashboard. Thresholds: alarm_thresholds."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from pipeline.config import STREAMS, Stage
from stacks import alarm_thresholds as t
from stacks.processing import FUNCTIONS

GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
LT = cw.ComparisonOperator.LESS_THAN_THRESHOLD


def _metric(
    namespace: str, name: str, dimensions: dict[str, str], statistic: str, label: str | None = None
) -> cw.Metric:
    return cw.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map=dimensions,
        statistic=statistic,
        period=t.PERIOD,
        label=label,
    )


class Monitoring(Construct):
    """Built from resource names alone (`Stage`), so it deploys and reads the same for every target."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: Stage) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        key = kms.Key(
            self,
            "TopicKey",
            alias=f"alias/{stage.alarm_topic}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            description=f"{stage.alarm_topic}: SNS topic encryption",
        )
        # CloudWatch publishes to the encrypted topic: it must be able to use the key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],  # in a key policy, `*` means this key
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic", topic_name=stage.alarm_topic, master_key=key, enforce_ssl=True
        )
        self.alarms: dict[str, cw.Alarm] = {}
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=stage.prefix)
        self._kinesis()
        self._lambdas()
        self._queues()
        self._flink()
        self._firehose()

    def _alarm(
        self,
        alarm_id: str,
        metric: cw.IMetric,
        threshold: float,
        comparison: cw.ComparisonOperator,
        description: str,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            alarm_id,
            alarm_name=f"{self.stage.prefix}-{alarm_id}",
            alarm_description=f"{description} See docs/runbook.md#{alarm_id.split('.')[0]}.",
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=t.EVALUATION_PERIODS,
            datapoints_to_alarm=t.DATAPOINTS_TO_ALARM,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms[alarm_id] = alarm
        return alarm

    def _kinesis(self) -> None:
        throughput: list[cw.IMetric] = []
        lag: list[cw.IMetric] = []
        for logical in STREAMS:
            dims = {"StreamName": self.stage.stream(logical)}
            ns = "AWS/Kinesis"
            iterator_age = _metric(ns, "GetRecords.IteratorAgeMilliseconds", dims, "Maximum", logical)
            self._alarm(
                f"iterator-age.{logical}",
                iterator_age,
                t.ITERATOR_AGE_MS,
                GT,
                f"Consumers of {logical} fall behind by more than {t.ITERATOR_AGE_MS} ms.",
            )
            self._alarm(
                f"write-throttled.{logical}",
                _metric(ns, "WriteProvisionedThroughputExceeded", dims, "Sum"),
                t.WRITE_THROTTLED_RECORDS,
                GT,
                f"Writes to {logical} are throttled.",
            )
            self._alarm(
                f"read-throttled.{logical}",
                _metric(ns, "ReadProvisionedThroughputExceeded", dims, "Sum"),
                t.READ_THROTTLED_REQUESTS,
                GT,
                f"Reads from {logical} are throttled.",
            )
            put_success = cw.MathExpression(
                expression="IF(total > 0, ok / total, 1)",
                using_metrics={
                    "ok": _metric(ns, "PutRecords.SuccessfulRecords", dims, "Sum"),
                    "total": _metric(ns, "PutRecords.TotalRecords", dims, "Sum"),
                },
                period=t.PERIOD,
                label=f"{logical} PutRecords success rate",
            )
            self._alarm(
                f"put-records-success.{logical}",
                put_success,
                t.PUT_RECORDS_SUCCESS_MIN,
                LT,
                f"Fewer than {t.PUT_RECORDS_SUCCESS_MIN:.0%} of records put to {logical} succeed.",
            )
            self._alarm(
                f"get-records-success.{logical}",
                _metric(ns, "GetRecords.Success", dims, "Average"),
                t.GET_RECORDS_SUCCESS_MIN,
                LT,
                f"Fewer than {t.GET_RECORDS_SUCCESS_MIN:.0%} of GetRecords calls on {logical} succeed.",
            )
            throughput.append(_metric(ns, "IncomingRecords", dims, "Sum", f"{logical} in"))
            lag.append(iterator_age)
        self.dashboard.add_widgets(
            cw.TextWidget(markdown=f"# {self.stage.prefix}: ingest (Kinesis)", width=24, height=1),
            cw.GraphWidget(title="Throughput: records in per minute", left=throughput, width=12),
            cw.GraphWidget(title="Lag: iterator age (ms)", left=lag, width=12),
        )

    def _lambdas(self) -> None:
        for spec in FUNCTIONS:
            dims = {"FunctionName": self.stage.function(spec.logical)}
            ns = "AWS/Lambda"
            errors = _metric(ns, "Errors", dims, "Sum", f"{spec.logical} errors")
            throttles = _metric(ns, "Throttles", dims, "Sum", f"{spec.logical} throttles")
            duration = _metric(ns, "Duration", dims, "p99", f"{spec.logical} p99 duration")
            iterator_age = _metric(ns, "IteratorAge", dims, "Maximum", f"{spec.logical} iterator age")
            self._alarm(
                f"lambda-errors.{spec.logical}",
                errors,
                t.LAMBDA_ERRORS,
                GT,
                f"{spec.logical} invocations fail.",
            )
            self._alarm(
                f"lambda-throttles.{spec.logical}",
                throttles,
                t.LAMBDA_THROTTLES,
                GT,
                f"{spec.logical} is throttled.",
            )
            limit_ms = spec.timeout.to_milliseconds() * t.LAMBDA_DURATION_P99_OF_TIMEOUT
            self._alarm(
                f"lambda-duration.{spec.logical}",
                duration,
                limit_ms,
                GT,
                f"{spec.logical} p99 duration is above {t.LAMBDA_DURATION_P99_OF_TIMEOUT:.0%} of its timeout.",
            )
            self._alarm(
                f"lambda-iterator-age.{spec.logical}",
                iterator_age,
                t.LAMBDA_ITERATOR_AGE_MS,
                GT,
                f"{spec.logical}'s event source mapping falls behind.",
            )
            self.dashboard.add_widgets(
                cw.TextWidget(markdown=f"# {spec.logical} (Lambda)", width=24, height=1),
                cw.GraphWidget(
                    title=f"{spec.logical}: throughput",
                    left=[_metric(ns, "Invocations", dims, "Sum", "invocations")],
                    width=8,
                ),
                cw.GraphWidget(title=f"{spec.logical}: errors", left=[errors, throttles], width=8),
                cw.GraphWidget(
                    title=f"{spec.logical}: lag and duration", left=[iterator_age], right=[duration], width=8
                ),
            )

    def _queues(self) -> None:
        ns = "AWS/SQS"
        dlq = {"QueueName": self.stage.dlq_name}
        depth = _metric(ns, "ApproximateNumberOfMessagesVisible", dlq, "Maximum", "DLQ depth")
        oldest = _metric(ns, "ApproximateAgeOfOldestMessage", dlq, "Maximum", "DLQ oldest (s)")
        failures = _metric(
            ns,
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": self.stage.on_failure_queue_name},
            "Maximum",
            "mapping failures",
        )
        self._alarm("dlq-depth", depth, t.DLQ_VISIBLE_MESSAGES, GT, "Bad rows pile up in the DLQ.")
        self._alarm(
            "dlq-age", oldest, t.DLQ_OLDEST_MESSAGE_AGE_S, GT, "Bad rows in the DLQ are not being triaged."
        )
        self._alarm(
            "mapping-failures",
            failures,
            t.MAPPING_FAILURES_VISIBLE,
            GT,
            "An event source mapping gave up on a batch.",
        )
        self.dashboard.add_widgets(
            cw.TextWidget(markdown="# Errors: bad rows and failed batches", width=24, height=1),
            cw.GraphWidget(
                title="DLQ and mapping failures", left=[depth, failures], right=[oldest], width=24
            ),
        )

    def _flink(self) -> None:
        ns = "AWS/KinesisAnalytics"
        dims = {"Application": self.stage.flink_application}
        downtime = _metric(ns, "downtime", dims, "Maximum", "downtime (ms)")
        failed = _metric(ns, "numberOfFailedCheckpoints", dims, "Maximum", "failed checkpoints")
        late = _metric(ns, "numLateRecordsDropped", dims, "Maximum", "late records dropped")
        behind = _metric(ns, "millisBehindLatest", dims, "Maximum", "ms behind latest")
        records_in = _metric(ns, "numRecordsInPerSecond", dims, "Average", "records in / s")
        self._alarm(
            "flink-downtime", downtime, t.FLINK_DOWNTIME_MS, GT, "The Flink application is not running."
        )
        self._alarm(
            "flink-failed-checkpoints", failed, t.FLINK_FAILED_CHECKPOINTS, GT, "Flink checkpoints fail."
        )
        self._alarm(
            "flink-late-records-dropped", late, t.FLINK_LATE_RECORDS_DROPPED, GT, "Flink drops late records."
        )
        self.dashboard.add_widgets(
            cw.TextWidget(markdown="# Analytics (Managed Flink)", width=24, height=1),
            cw.GraphWidget(title="Flink: throughput", left=[records_in], width=8),
            cw.GraphWidget(title="Flink: lag", left=[behind], width=8),
            cw.GraphWidget(title="Flink: errors", left=[downtime], right=[failed, late], width=8),
        )

    def _firehose(self) -> None:
        ns = "AWS/Firehose"
        dims = {"DeliveryStreamName": self.stage.raw_archive_stream}
        freshness = _metric(ns, "DeliveryToS3.DataFreshness", dims, "Maximum", "raw/ freshness (s)")
        delivered = _metric(ns, "DeliveryToS3.Records", dims, "Sum", "records delivered")
        self._alarm(
            "firehose-freshness",
            freshness,
            t.FIREHOSE_FRESHNESS_S,
            GT,
            "The raw/ archive lags behind events-raw.",
        )
        self.dashboard.add_widgets(
            cw.TextWidget(markdown="# Archive and lake freshness", width=24, height=1),
            cw.GraphWidget(title="Firehose raw/ archive", left=[delivered], right=[freshness], width=24),
        )
