-- Daily active accounts per app (what an app's dashboard reports).
SELECT app_id, event_date, count(DISTINCT account_id) AS dau
FROM events GROUP BY app_id, event_date ORDER BY app_id, event_date
