-- How many days accounts are active: a histogram.
WITH d AS (
  SELECT account_id, count(DISTINCT event_date) AS days FROM events GROUP BY account_id
)
SELECT days, count(*) AS accounts FROM d GROUP BY days ORDER BY days
