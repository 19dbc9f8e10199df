-- Revenue per event-time minute and currency, in minor units (exact integer sums), one row per order event.
CREATE OR REPLACE VIEW revenue_per_minute AS
WITH purchases AS (
  SELECT
    event_time,
    event_date,
    payload.currency AS currency,
    payload.amount_minor AS amount_minor,
    ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY enrichment.arrival_time) AS occurrence
  FROM events_purchase
)
SELECT
  DATE_TRUNC('minute', event_time) AS minute,
  currency,
  COUNT(*) AS purchases,
  SUM(amount_minor) AS revenue_minor,
  event_date
FROM purchases
WHERE occurrence = 1
GROUP BY DATE_TRUNC('minute', event_time), currency, event_date
