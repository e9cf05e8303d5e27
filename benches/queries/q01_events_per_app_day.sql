-- Events per app and local day: the basic activity table.
SELECT app_id, event_date, count(*) AS events
FROM events GROUP BY app_id, event_date ORDER BY app_id, event_date
