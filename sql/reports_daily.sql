-- reports_daily: per account, app and local day, the reports filed, how many
-- were near-copies of the one before, and in how many categories and
-- sessions. Input to the report_inflation
-- detector, which sets the day against the baseline of all accounts' days
-- of the same app and kind of day (weekday or weekend).
CREATE OR REPLACE VIEW reports_daily AS
SELECT app_id, account_id, event_date,
       min(region) AS region,
       count(*) AS reports,
       sum(CASE WHEN near_copy THEN 1 ELSE 0 END) AS near_copies,
       count(DISTINCT category) AS categories,
       count(DISTINCT session_id) AS sessions,
       CAST(min(t_us) AS BIGINT) AS first_us,
       CAST(max(t_us) AS BIGINT) AS last_us
FROM reports
GROUP BY app_id, account_id, event_date;
