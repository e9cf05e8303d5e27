-- Activity per unit, app and week.
SELECT region, app_id, date_trunc('week', ts) AS week,
       count(*) AS events, count(DISTINCT account_id) AS accounts
FROM events WHERE region IS NOT NULL
GROUP BY region, app_id, date_trunc('week', ts) ORDER BY region, app_id, week
