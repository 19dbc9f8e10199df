-- Revenue per minute and currency in minor units, from Flink's revenue_by_currency windows.
CREATE OR REPLACE VIEW revenue_per_minute AS
SELECT
  DATE_TRUNC('minute', window_start) AS minute,
  dimensions.currency::VARCHAR(3) AS currency,
  SUM(metric_values.purchases::DOUBLE PRECISION)::BIGINT AS purchases,
  SUM(metric_values.revenue_minor::DOUBLE PRECISION)::BIGINT AS revenue_minor
FROM metrics_latest
WHERE metric = 'revenue_by_currency'
GROUP BY DATE_TRUNC('minute', window_start), dimensions.currency::VARCHAR(3);
