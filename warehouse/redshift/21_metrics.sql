-- The typed view over the metrics MV, named and shaped like Athena's `metrics`, so the dashboard
-- queries read the same in both engines. Epoch milliseconds become timestamps (UTC).
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
