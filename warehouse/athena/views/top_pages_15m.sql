-- The ten most viewed pages of the last 15 minutes (event time), one view per event_id.
-- The event_date predicate lets partition projection read at most two days of files.
CREATE OR REPLACE VIEW top_pages_15m AS
WITH recent_views AS (
  SELECT
    payload.url AS page,
    user_id,
    ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY enrichment.arrival_time) AS occurrence
  FROM events_page_view
  WHERE event_date >= CAST(CAST(CURRENT_TIMESTAMP - INTERVAL '15' MINUTE AS DATE) AS VARCHAR)
    AND event_time >= CAST(CURRENT_TIMESTAMP - INTERVAL '15' MINUTE AS TIMESTAMP)
),
page_counts AS (
  SELECT page, COUNT(*) AS views, COUNT(DISTINCT user_id) AS users
  FROM recent_views
  WHERE occurrence = 1
  GROUP BY page
)
SELECT page_rank, page, views, users
FROM (
  SELECT ROW_NUMBER() OVER (ORDER BY views DESC, page) AS page_rank, page, views, users
  FROM page_counts
) AS ranked
WHERE page_rank <= 10
