"""Every alarm threshold, in one place: the monitoring stack, the runbook and the infra tests read these."""

from __future__ import annotations

from aws_cdk import Duration

# Kinesis (thresholds as in the AWS "Streaming Data Solution for Amazon Kinesis").
ITERATOR_AGE_MS = 60_000  # GetRecords.IteratorAgeMilliseconds, maximum
PUT_RECORDS_SUCCESS_MIN = 0.95  # PutRecords.SuccessfulRecords / PutRecords.TotalRecords
GET_RECORDS_SUCCESS_MIN = 0.98  # GetRecords.Success, average
WRITE_THROTTLED_RECORDS = 0  # WriteProvisionedThroughputExceeded, sum per period: any is an alarm
READ_THROTTLED_REQUESTS = 0  # ReadProvisionedThroughputExceeded, sum per period

# Lambda (enricher and lake-writer alike).
LAMBDA_ERRORS = 0  # Errors, sum per period
LAMBDA_THROTTLES = 0  # Throttles, sum per period
LAMBDA_DURATION_P99_OF_TIMEOUT = 0.8  # p99 Duration above this fraction of the timeout
LAMBDA_ITERATOR_AGE_MS = 60_000  # IteratorAge of the Kinesis event source mapping, maximum

# DLQ of bad rows: some bad input is normal; a pile or an unread message is not.
DLQ_VISIBLE_MESSAGES = 100
DLQ_OLDEST_MESSAGE_AGE_S = 24 * 3600
MAPPING_FAILURES_VISIBLE = 0  # any batch the mappings gave up on is data that skipped a stage

# Managed Flink.
FLINK_DOWNTIME_MS = 0
FLINK_FAILED_CHECKPOINTS = 0  # numberOfFailedCheckpoints, increase per period
FLINK_LATE_RECORDS_DROPPED = 0  # too-late events must reach the late sink, never be dropped

# Firehose archive of events-raw.
FIREHOSE_FRESHNESS_S = 900  # DeliveryToS3.DataFreshness, maximum (buffer interval + margin)

PERIOD = Duration.minutes(1)
EVALUATION_PERIODS = 5
DATAPOINTS_TO_ALARM = 3
