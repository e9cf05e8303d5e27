-- account_days: one row per app, unit (region, '' when the events name none),
-- local day and account that was active: its events that day, the seconds
-- its sessions lasted (from session_end duration_s), its check-ins and
-- reports filed (what the apps ask of a person), and whether a finding
-- that covers the day flags it (`flagged`; `detector` names one that did).
-- The base of activity_daily and app_health.
CREATE OR REPLACE VIEW account_days AS
WITH per_account AS (
    SELECT app_id, coalesce(region, '') AS region, event_date AS day, account_id,
           count(*) AS events,
           CAST(sum(CASE WHEN kind = 'session_end' THEN coalesce(duration_s, 0) ELSE 0 END) AS BIGINT) AS seconds,
           sum(CASE WHEN kind = 'check_in' THEN 1 ELSE 0 END) AS check_ins,
           sum(CASE WHEN kind = 'report_submit' THEN 1 ELSE 0 END) AS reports
    FROM events
    GROUP BY app_id, coalesce(region, ''), event_date, account_id
)
SELECT p.app_id, p.region, p.day, p.account_id, p.events, p.seconds,
       p.check_ins, p.reports,
       count(f.finding_id) > 0 AS flagged,
       min(f.detector) AS detector
FROM per_account p
LEFT JOIN flagged_accounts f
       ON f.account_id = p.account_id AND f.app_id = p.app_id
      AND p.day >= f.first_day AND p.day <= f.last_day
GROUP BY p.app_id, p.region, p.day, p.account_id, p.events, p.seconds,
         p.check_ins, p.reports;
