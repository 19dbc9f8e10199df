-- The ten most viewed pages of the last 15 minutes, from Flink's page_activity windows (seconds fresh).
CREATE OR REPLACE VIEW top_pages_15m AS
SELECT page_rank, page, views
FROM (
  SELECT
    ROW_NUMBER() OVER (ORDER BY SUM(metric_values.views::DOUBLE PRECISION) DESC, dimensions.page::VARCHAR(2048)) AS page_rank,
    dimensions.page::VARCHAR(2048) AS page,
    SUM(metric_values.views::DOUBLE PRECISION) AS views
  FROM metrics_latest
  WHERE metric = 'page_activity'
    AND window_start >= DATEADD(minute, -15, GETDATE())
  GROUP BY dimensions.page::VARCHAR(2048)
) AS ranked
WHERE page_rank <= 10;
