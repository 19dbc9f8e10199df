-- Streaming-ingestion materialised views: each Kinesis record parsed once into SUPER (AWS's
-- recommended JSON_PARSE(kinesis_data) pattern), refreshed automatically within seconds.
-- Records that are not one JSON document (KPL-aggregated records, which streaming ingestion does not
-- de-aggregate) are skipped by CAN_JSON_PARSE instead of failing the refresh.
CREATE MATERIALIZED VIEW events_enriched_stream
AUTO REFRESH YES
AS
SELECT
  approximate_arrival_timestamp,
  partition_key,
  shard_id,
  sequence_number,
  JSON_PARSE(kinesis_data) AS event
FROM kinesis_streams."${prefix}-events-enriched"
WHERE CAN_JSON_PARSE(kinesis_data);

CREATE MATERIALIZED VIEW metrics_stream
AUTO REFRESH YES
AS
SELECT
  approximate_arrival_timestamp,
  shard_id,
  sequence_number,
  JSON_PARSE(kinesis_data) AS metric_row
FROM kinesis_streams."${prefix}-metrics"
WHERE CAN_JSON_PARSE(kinesis_data);
