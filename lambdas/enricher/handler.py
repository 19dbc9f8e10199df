"""Enricher Lambda (Kinesis events-raw -> events-enriched + SQS DLQ). Glue only: see pipeline.enrich.

Environment (set by the CDK stack; local defaults come from the stage in cdk.json):
ENRICHED_STREAM_NAME, DLQ_URL or DLQ_NAME, FUTURE_TOLERANCE_S, PSEUDONYM_KEY_SECRET (Secrets Manager
secret name) or PSEUDONYM_KEY (hex), POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.enrich.service import Enricher, KinesisRecordProcessor, run_invocation

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "enricher"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "rta/enricher"))
tracer = Tracer()
processor = KinesisRecordProcessor(raise_on_entire_batch_failure=False)


@cache
def enricher() -> Enricher:
    return Enricher.from_env()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_invocation(event, enricher(), processor, logger, metrics)
