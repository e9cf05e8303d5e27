-- The twenty busiest accounts.
SELECT account_id, count(*) AS events, count(DISTINCT event_date) AS days
FROM events GROUP BY account_id ORDER BY events DESC, account_id LIMIT 20
