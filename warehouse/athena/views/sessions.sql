-- One row per session: its span in event time and what happened in it.
CREATE OR REPLACE VIEW sessions AS
SELECT
  session_id,
  MAX(user_id) AS user_id,
  MIN(event_time) AS session_start,
  MAX(event_time) AS session_end,
  DATE_DIFF('millisecond', MIN(event_time), MAX(event_time)) AS duration_ms,
  COUNT(*) AS events,
  COUNT_IF(event_type = 'page_view') AS page_views,
  COUNT_IF(event_type = 'add_to_cart') AS add_to_carts,
  COUNT_IF(event_type = 'purchase') AS purchases,
  MIN(event_date) AS first_event_date
FROM events
WHERE session_id IS NOT NULL
GROUP BY session_id
