-- activity_daily: one row per app, unit (region) and local day: how many
-- accounts were active (raw, what an app's dashboard reports), how many of
-- them were flagged (see flagged_accounts), how many were really active
-- (raw minus flagged), the day's events, the events of flagged accounts, and
-- the faked share of the events (faked_events / events, 0..1).
CREATE OR REPLACE VIEW activity_daily AS
SELECT app_id, region, day,
       count(*) AS active_accounts,
       sum(CASE WHEN flagged THEN 1 ELSE 0 END) AS flagged_accounts,
       sum(CASE WHEN flagged THEN 0 ELSE 1 END) AS real_active_accounts,
       sum(events) AS events,
       sum(CASE WHEN flagged THEN events ELSE 0 END) AS faked_events,
       CAST(sum(CASE WHEN flagged THEN events ELSE 0 END) AS DOUBLE)
           / CAST(sum(events) AS DOUBLE) AS faked_share
FROM account_days
GROUP BY app_id, region, day;
