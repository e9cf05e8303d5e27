-- What the activity consists of, per app.
SELECT app_id, kind, count(*) AS events
FROM events GROUP BY app_id, kind ORDER BY app_id, events DESC
