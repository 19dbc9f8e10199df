-- The current value of every metric window: the newest version per upsert key
-- (metric, window_start, window_end, dimensions) among `insert` rows. A retraction always comes
-- with the insert of the next version, and duplicated rows (retried batches) rank the same.
CREATE OR REPLACE VIEW metrics_latest AS
SELECT metric, window_start, window_end, dimensions, "values", version, emitted_at, window_date
FROM (
  SELECT
    m.*,
    ROW_NUMBER() OVER (
      PARTITION BY metric, window_start, window_end, dimensions
      ORDER BY version DESC, emitted_at DESC
    ) AS recency
  FROM metrics AS m
  WHERE op = 'insert'
) AS ranked
WHERE recency = 1
