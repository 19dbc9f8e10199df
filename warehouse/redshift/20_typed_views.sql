-- Typed views over the streaming MVs, named and shaped like the Athena ones (`events`, `metrics`), so
-- the dashboard queries read the same in both engines. Epoch milliseconds become timestamps (UTC).
CREATE OR REPLACE VIEW events AS
SELECT
  event_id, event_type, schema_version, event_time, source, user_id, session_id, user_agent, ip,
  arrival_time, ua_family, os_family, device_family, is_bot, country, enricher_version, payload
FROM (
  SELECT
    event.event_id::VARCHAR(36) AS event_id,
    event.event_type::VARCHAR(64) AS event_type,
    event.schema_version::INT AS schema_version,
    TIMESTAMP 'epoch' + (event.event_time::BIGINT / 1000.0) * INTERVAL '1 second' AS event_time,
    event.source::VARCHAR(32) AS source,
    event.user_id::VARCHAR(128) AS user_id,
    event.session_id::VARCHAR(128) AS session_id,
    event.user_agent::VARCHAR(1024) AS user_agent,
    event.ip::VARCHAR(128) AS ip,
    TIMESTAMP 'epoch' + (event.enrichment.arrival_time::BIGINT / 1000.0) * INTERVAL '1 second' AS arrival_time,
    event.enrichment.ua_family::VARCHAR(128) AS ua_family,
    event.enrichment.os_family::VARCHAR(128) AS os_family,
    event.enrichment.device_family::VARCHAR(128) AS device_family,
    event.enrichment.is_bot::BOOLEAN AS is_bot,
    event.enrichment.country::VARCHAR(2) AS country,
    event.enrichment.enricher_version::VARCHAR(64) AS enricher_version,
    event.payload AS payload,
    ROW_NUMBER() OVER (PARTITION BY event.event_id::VARCHAR(36) ORDER BY sequence_number) AS occurrence
  FROM events_enriched_stream
) AS numbered
WHERE occurrence = 1;

CREATE OR REPLACE VIEW metrics AS
SELECT
  metric_row.metric::VARCHAR(64) AS metric,
  TIMESTAMP 'epoch' + (metric_row.window_start::BIGINT / 1000.0) * INTERVAL '1 second' AS window_start,
  TIMESTAMP 'epoch' + (metric_row.window_end::BIGINT / 1000.0) * INTERVAL '1 second' AS window_end,
  metric_row.dimensions AS dimensions,
  JSON_SERIALIZE(metric_row.dimensions) AS dimension_key,
  metric_row."values" AS metric_values,
  metric_row.version::INT AS version,
  metric_row.op::VARCHAR(8) AS op,
  TIMESTAMP 'epoch' + (metric_row.emitted_at::BIGINT / 1000.0) * INTERVAL '1 second' AS emitted_at
FROM metrics_stream;
