"""Lake writer Lambda: `events-enriched` and `metrics` batches -> Parquet in the lake (glue only)."""

from typing import Any

from aws_lambda_powertools import Logger

from pipeline.lake.catalog import glue_catalog
from pipeline.lake.store import s3_lake
from pipeline.lake.writer import write_batch

logger = Logger(service="lake-writer")
lake = s3_lake()
catalog = glue_catalog()  # remembers the partitions it registered while this instance lives


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    written = write_batch(event, lake, catalog)
    logger.info("batch written", extra={"objects": written})
    return {"batchItemFailures": []}
