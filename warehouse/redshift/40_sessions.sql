-- One row per session: its span in event time and what happened in it.
CREATE OR REPLACE VIEW sessions AS
SELECT
  session_id,
  MAX(user_id) AS user_id,
  MIN(event_time) AS session_start,
  MAX(event_time) AS session_end,
  DATEDIFF(millisecond, MIN(event_time), MAX(event_time)) AS duration_ms,
  COUNT(*) AS events,
  SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS page_views,
  SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS add_to_carts,
  SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases
FROM events
WHERE session_id IS NOT NULL
GROUP BY session_id;
