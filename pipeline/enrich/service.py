"""The enricher as a long-lived object (one per warm Lambda or local process) and one invocation's run."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.base import FailureResponse, SuccessResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from pipeline.aws import client
from pipeline.config import stage
from pipeline.enrich.bad_rows import DeadLetterQueue
from pipeline.enrich.batch import BatchOutcome, EnrichBatch, EnrichedStreamWriter
from pipeline.enrich.enrichment import Pseudonymiser
from pipeline.enrich.pseudonym_key import pseudonym_key
from pipeline.produce.kinesis import KinesisWriter


@dataclass(frozen=True)
class EnricherSettings:
    """From the Lambda environment (set by the CDK stack), defaulting to the stage's names locally."""

    enriched_stream: str
    dlq_url: str
    future_tolerance_s: int

    @classmethod
    def from_env(cls, sqs: Any) -> EnricherSettings:
        the_stage = stage()
        dlq_url = (
            os.environ.get("DLQ_URL")
            or sqs.get_queue_url(QueueName=os.environ.get("DLQ_NAME", the_stage.dlq_name))["QueueUrl"]
        )
        return cls(
            enriched_stream=os.environ.get("ENRICHED_STREAM_NAME", the_stage.stream("events-enriched")),
            dlq_url=dlq_url,
            future_tolerance_s=int(os.environ.get("FUTURE_TOLERANCE_S", the_stage.future_tolerance_s)),
        )


class Enricher:
    def __init__(
        self,
        writer: EnrichedStreamWriter,
        dlq: DeadLetterQueue,
        pseudonymiser: Pseudonymiser,
        future_tolerance_s: int,
    ) -> None:
        self.writer = writer
        self.dlq = dlq
        self.pseudonymiser = pseudonymiser
        self.future_tolerance_s = future_tolerance_s

    @classmethod
    def from_env(cls) -> Enricher:
        kinesis, sqs = client("kinesis"), client("sqs")
        settings = EnricherSettings.from_env(sqs)
        return cls(
            KinesisWriter(kinesis, settings.enriched_stream, aggregate=True),
            DeadLetterQueue(sqs, settings.dlq_url),
            Pseudonymiser(pseudonym_key()),
            settings.future_tolerance_s,
        )

    def new_batch(self) -> EnrichBatch:
        return EnrichBatch(self.writer, self.dlq, self.pseudonymiser, self.future_tolerance_s)


class KinesisRecordProcessor(BatchProcessor):
    """Powertools' BatchProcessor for Kinesis, handing the record handler the raw record dict.

    The stock `_process_record` wraps every record in its data class (`_to_batch_type`: a lookup keyed
    by an Enum, whose hash is Python code) and calls the handler and `success_handler` with keywords:
    ~1 us a record, 6 % of the enricher's budget, for a wrapper the handler unwraps at once. This is the
    processor extension Powertools documents ("create your own partial processor": `_process_record`);
    success and failure tracking, the partial batch response and `raise_on_entire_batch_failure` stay
    Powertools' own. A failed record is wrapped as usual, so failure collection reads its sequence number
    as before. No `model` (Pydantic parsing) support: the enricher does not use one.
    """

    def __init__(self, raise_on_entire_batch_failure: bool = True) -> None:
        super().__init__(
            EventType.KinesisDataStreams, raise_on_entire_batch_failure=raise_on_entire_batch_failure
        )

    def _process_record(self, record: dict[str, Any]) -> SuccessResponse | FailureResponse:
        try:
            if self._handler_accepts_lambda_context:
                result = self.handler(record=record, lambda_context=self.lambda_context)
            else:
                result = self.handler(record)
        except Exception:
            return self.failure_handler(KinesisStreamRecord(record), sys.exc_info())
        return self.success_handler(record, result)


def run_invocation(
    event: dict[str, Any], enricher: Enricher, processor: BatchProcessor, logger: Logger, metrics: Metrics
) -> dict[str, Any]:
    """Stage every record through the Powertools processor, deliver, and return the partial batch response."""
    records = event.get("Records", [])
    batch = enricher.new_batch()
    # raise_on_entire_batch_failure=False on the processor: an all-failed batch is reported, not raised.
    with processor(records=records, handler=batch.add):
        processor.process()
    staging_failures = {f["itemIdentifier"] for f in processor.response()["batchItemFailures"]}
    outcome = batch.deliver()
    failed = staging_failures | set(outcome.failed_sequence_numbers)
    response = {
        "batchItemFailures": [
            {"itemIdentifier": r["kinesis"]["sequenceNumber"]}
            for r in records
            if r["kinesis"]["sequenceNumber"] in failed
        ]
        if failed
        else []
    }
    _record_metrics(outcome, len(staging_failures), metrics)
    if records:
        logger.info(
            "batch enriched",
            shard_id=records[0]["eventID"].split(":", 1)[0],
            first_sequence_number=records[0]["kinesis"]["sequenceNumber"],
            last_sequence_number=records[-1]["kinesis"]["sequenceNumber"],
            kinesis_records=outcome.kinesis_records,
            events_in=outcome.events_in,
            enriched=outcome.enriched,
            bad_rows=dict(outcome.bad_rows),
            batch_item_failures=len(response["batchItemFailures"]),
        )
    return response


def _record_metrics(outcome: BatchOutcome, staging_failures: int, metrics: Metrics) -> None:
    metrics.add_metric(name="KinesisRecordsIn", unit=MetricUnit.Count, value=outcome.kinesis_records)
    metrics.add_metric(name="EventsIn", unit=MetricUnit.Count, value=outcome.events_in)
    metrics.add_metric(name="DeaggregatedRecords", unit=MetricUnit.Count, value=outcome.deaggregated)
    metrics.add_metric(name="Enriched", unit=MetricUnit.Count, value=outcome.enriched)
    metrics.add_metric(name="BadRows", unit=MetricUnit.Count, value=sum(outcome.bad_rows.values()))
    metrics.add_metric(
        name="UndeliveredEvents",
        unit=MetricUnit.Count,
        value=outcome.undelivered_enriched + outcome.undelivered_bad_rows,
    )
    metrics.add_metric(name="StagingFailures", unit=MetricUnit.Count, value=staging_failures)
    for reason, count in outcome.bad_rows.items():
        # One metric name per reason keeps a single EMF blob (Powertools dimensions apply blob-wide).
        metrics.add_metric(name=f"BadRows_{reason}", unit=MetricUnit.Count, value=count)
