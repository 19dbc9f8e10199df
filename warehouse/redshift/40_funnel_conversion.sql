-- Per event date: human sessions that viewed a page, then also added to cart, then also purchased.
CREATE OR REPLACE VIEW funnel_conversion AS
WITH session_steps AS (
  SELECT
    TRUNC(event_time) AS event_date,
    session_id,
    MAX(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed,
    MAX(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carted,
    MAX(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchased
  FROM events
  WHERE session_id IS NOT NULL AND NOT is_bot
  GROUP BY TRUNC(event_time), session_id
)
SELECT
  event_date,
  SUM(viewed) AS viewed_sessions,
  SUM(viewed * carted) AS carted_sessions,
  SUM(viewed * carted * purchased) AS purchased_sessions,
  SUM(viewed * carted)::DOUBLE PRECISION / NULLIF(SUM(viewed), 0) AS view_to_cart_rate,
  SUM(viewed * carted * purchased)::DOUBLE PRECISION / NULLIF(SUM(viewed * carted), 0) AS cart_to_purchase_rate,
  SUM(viewed * carted * purchased)::DOUBLE PRECISION / NULLIF(SUM(viewed), 0) AS view_to_purchase_rate
FROM session_steps
GROUP BY event_date;
