-- worker_burden: one row per account and week (Monday to Sunday, local days):
-- what feeding the apps cost that person. apps_used: distinct apps;
-- days_active; minutes_in_apps: the sessions' length (session_end
-- duration_s, minutes, 1 decimal); check_ins, reports (report_submit),
-- records_touched (distinct records created, updated or deleted), tasks
-- (study/quiz tasks completed), patrols (started); events in all; region:
-- the account's unit (the smallest code it used that week).
CREATE OR REPLACE VIEW worker_burden AS
SELECT account_id,
       CAST(date_trunc('week', CAST(event_date AS TIMESTAMP)) AS DATE) AS week,
       min(region) AS region,
       count(DISTINCT app_id) AS apps_used,
       count(DISTINCT event_date) AS days_active,
       round(CAST(sum(CASE WHEN kind = 'session_end' THEN coalesce(duration_s, 0) ELSE 0 END) AS DOUBLE) / 60.0, 1)
           AS minutes_in_apps,
       sum(CASE WHEN kind = 'check_in' THEN 1 ELSE 0 END) AS check_ins,
       sum(CASE WHEN kind = 'report_submit' THEN 1 ELSE 0 END) AS reports,
       count(DISTINCT CASE WHEN kind IN ('record_create', 'record_update', 'record_delete')
                           THEN record_key END) AS records_touched,
       sum(CASE WHEN kind = 'task_complete' THEN 1 ELSE 0 END) AS tasks,
       sum(CASE WHEN kind = 'patrol_start' THEN 1 ELSE 0 END) AS patrols,
       count(*) AS events
FROM events
GROUP BY account_id, CAST(date_trunc('week', CAST(event_date AS TIMESTAMP)) AS DATE);
