-- The current value of every metric window: newest version per upsert key among `insert` rows
-- (SUPER cannot be a window partition key: the dimensions' JSON text stands in for it).
CREATE OR REPLACE VIEW metrics_latest AS
SELECT metric, window_start, window_end, dimensions, metric_values, version, emitted_at
FROM (
  SELECT
    metrics.*,
    ROW_NUMBER() OVER (
      PARTITION BY metric, window_start, window_end, dimension_key
      ORDER BY version DESC, emitted_at DESC
    ) AS recency
  FROM metrics
  WHERE op = 'insert'
) AS ranked
WHERE recency = 1;
