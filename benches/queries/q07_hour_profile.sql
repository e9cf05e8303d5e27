-- When in the day each kind of event happens (UTC hours).
SELECT date_part('hour', ts) AS hour, kind, count(*) AS events
FROM events GROUP BY date_part('hour', ts), kind ORDER BY hour, kind
