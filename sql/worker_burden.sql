-- worker_burden: one row per account and week (Monday to Sunday, local days):
-- what feeding the apps cost that person. apps_used: distinct apps;
-- days_active; minutes_in_apps: the sessions' length (session_end
-- duration_s, minutes, 1 decimal); check_ins, reports (report_submit),
-- records_touched (distinct records created, updated or deleted), tasks
-- (study/quiz tasks completed), patrols (started); events in all; region:
-- the account's unit (the smallest code it used that week).
CREATE OR REPLACE VIEW worker_burden AS
-- Counted per account, app and day first (a few hundred thousand rows
-- instead of every event), then per week over those rows: the sums, and
-- the distinct apps and days as groupings of them (per_day is computed
-- once for the three: groundtruth shares a grouping named more than once),
-- not a hash set per account and week; the distinct records over the
-- record events alone.
WITH per_day AS (
    SELECT account_id, app_id, event_date,
           CAST(date_trunc('week', CAST(event_date AS TIMESTAMP)) AS DATE) AS week,
           min(region) AS region,
           sum(CASE WHEN kind = 'session_end' THEN coalesce(duration_s, 0) ELSE 0 END) AS seconds,
           sum(CASE WHEN kind = 'check_in' THEN 1 ELSE 0 END) AS check_ins,
           sum(CASE WHEN kind = 'report_submit' THEN 1 ELSE 0 END) AS reports,
           sum(CASE WHEN kind = 'task_complete' THEN 1 ELSE 0 END) AS tasks,
           sum(CASE WHEN kind = 'patrol_start' THEN 1 ELSE 0 END) AS patrols,
           count(*) AS events
    FROM events
    GROUP BY account_id, app_id, event_date
),
weekly AS (
    SELECT account_id, week,
           min(region) AS region,
           round(CAST(sum(seconds) AS DOUBLE) / 60.0, 1) AS minutes_in_apps,
           sum(check_ins) AS check_ins,
           sum(reports) AS reports,
           sum(tasks) AS tasks,
           sum(patrols) AS patrols,
           sum(events) AS events
    FROM per_day
    GROUP BY account_id, week
),
apps AS (
    SELECT account_id, week, count(*) AS apps_used
    FROM (SELECT account_id, week, app_id FROM per_day GROUP BY account_id, week, app_id) AS a
    GROUP BY account_id, week
),
days AS (
    SELECT account_id, week, count(*) AS days_active
    FROM (SELECT account_id, week, event_date FROM per_day GROUP BY account_id, week, event_date) AS d
    GROUP BY account_id, week
),
records AS (
    SELECT account_id,
           CAST(date_trunc('week', CAST(event_date AS TIMESTAMP)) AS DATE) AS week,
           count(DISTINCT record_key) AS records_touched
    FROM events
    WHERE kind IN ('record_create', 'record_update', 'record_delete') AND record_key IS NOT NULL
    GROUP BY account_id, CAST(date_trunc('week', CAST(event_date AS TIMESTAMP)) AS DATE)
)
SELECT w.account_id, w.week, w.region, a.apps_used, d.days_active, w.minutes_in_apps,
       w.check_ins, w.reports, coalesce(r.records_touched, 0) AS records_touched,
       w.tasks, w.patrols, w.events
FROM weekly w
JOIN apps a ON a.account_id = w.account_id AND a.week = w.week
JOIN days d ON d.account_id = w.account_id AND d.week = w.week
LEFT JOIN records r ON r.account_id = w.account_id AND r.week = w.week;
