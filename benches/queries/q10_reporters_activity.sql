-- What the accounts that submit reports do besides, per app (a join).
WITH reporters AS (
  SELECT account_id, count(*) AS reports FROM events
  WHERE kind = 'report_submit' GROUP BY account_id
)
SELECT e.app_id, count(DISTINCT e.account_id) AS accounts, count(*) AS events,
       sum(CASE WHEN e.kind = 'session_start' THEN 1 ELSE 0 END) AS sessions
FROM events e JOIN reporters r ON e.account_id = r.account_id
GROUP BY e.app_id ORDER BY e.app_id
