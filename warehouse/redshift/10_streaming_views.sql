-- Streaming-ingestion materialised views: each Kinesis record parsed once into SUPER (AWS's
-- recommended JSON_PARSE(kinesis_data) pattern), refreshed automatically within seconds.
-- Only `metrics` is streamed: Flink puts one changelog row per Kinesis record (no KPL aggregation),
-- so every record is one JSON document. Enriched events are NOT streamed: the enricher writes
-- KPL-aggregated records to `events-enriched`, which streaming ingestion does not de-aggregate
-- (CAN_JSON_PARSE is false for an aggregate, so such an MV would skip nearly every event).
-- Redshift reads them from the lake through Spectrum instead (`events`, 20_events.sql).
-- CAN_JSON_PARSE still guards the refresh: a record that is not one JSON document is skipped
-- instead of failing it.
-- Stages deployed before this change still ingest events-enriched into `events_enriched_stream`:
-- stop that (CASCADE drops the old `events` view over it; 20_events.sql makes the Spectrum one).
DROP MATERIALIZED VIEW IF EXISTS events_enriched_stream CASCADE;

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
