-- app_health: one row per app: its real use over the 90 days up to the
-- latest day in the lake, how its modules are used, and a classification
-- with the figures behind it, after the three criteria Huzhou used to
-- screen its government apps.
--
-- Months count back from the latest day: month 1 is the last 30 days, 2 the
-- 30 before, 3 the 30 before that. real_mau_1..3: distinct accounts with at
-- least one active day that no finding flags, per month (NULL for a month
-- with no activity at all in the lake: months_observed says how many had).
-- accounts_90d: every account active in the 90 days; faked_share_90d: the
-- share of its events made by flagged accounts. Modules (last 30 days, real
-- users only): modules used, rare_modules (used by fewer than 5% of the real
-- monthly users), top_module_share (the busiest module's share of events)
-- and module_hhi (Herfindahl index of module shares: 1 = one module does
-- everything).
--
-- classification, first that applies:
--   zombie:              real MAU at most 5, or under 2% of its accounts, in
--                        every observed month ("near-zero real users");
--   duplicate_of:<app>:  at least 70% of its real users also really use
--                        <app>, at least half of their functions are shared
--                        (app_overlap), and <app> has more real users;
--   low_use:             at least 3 modules and most of them (more than
--                        half) rarely used;
--   healthy.
-- `why` says which figures decided it.
CREATE OR REPLACE VIEW app_health AS
WITH last_day AS (
    -- The lake's latest day (account_days has a row for every event's day;
    -- reading it from events spares computing account_days once more).
    SELECT arrow_cast(max(event_date), 'Int32') AS d FROM events
),
recent AS (
    SELECT a.*, (l.d - arrow_cast(a.day, 'Int32')) / 30 + 1 AS month
    FROM account_days a CROSS JOIN last_day l
    WHERE arrow_cast(a.day, 'Int32') > l.d - 90
),
per_app AS (
    SELECT app_id,
           count(DISTINCT CASE WHEN month = 1 AND NOT flagged THEN account_id END) AS m1,
           count(DISTINCT CASE WHEN month = 2 AND NOT flagged THEN account_id END) AS m2,
           count(DISTINCT CASE WHEN month = 3 AND NOT flagged THEN account_id END) AS m3,
           max(CASE WHEN month = 1 THEN 1 ELSE 0 END) AS seen1,
           max(CASE WHEN month = 2 THEN 1 ELSE 0 END) AS seen2,
           max(CASE WHEN month = 3 THEN 1 ELSE 0 END) AS seen3,
           count(DISTINCT account_id) AS accounts_90d,
           count(DISTINCT CASE WHEN month = 1 THEN account_id END) AS raw_mau_1,
           sum(events) AS events_90d,
           sum(CASE WHEN flagged THEN events ELSE 0 END) AS faked_events_90d
    FROM recent
    GROUP BY app_id
),
module_days AS (
    -- Each account's events per module and day: one grouping of the
    -- events, not a join of every event back to `recent`.
    SELECT app_id, account_id, event_date AS day, module, count(*) AS events
    FROM events
    WHERE module IS NOT NULL
    GROUP BY app_id, account_id, event_date, module
),
month_events AS (
    -- Month 1's module use by real users: days no finding flags (as
    -- account_days's `flagged`).
    SELECT m.app_id, m.module, m.account_id, m.events
    FROM module_days m CROSS JOIN last_day l
    WHERE arrow_cast(m.day, 'Int32') > l.d - 30
      AND NOT EXISTS (SELECT 1 FROM flagged_accounts f
                      WHERE f.account_id = m.account_id AND f.app_id = m.app_id
                        AND m.day >= f.first_day AND m.day <= f.last_day)
),
module_use AS (
    SELECT app_id, module, count(DISTINCT account_id) AS users, sum(events) AS events
    FROM month_events
    GROUP BY app_id, module
),
modules AS (
    -- The app's total from a window over module_use, not a second CTE
    -- over it.
    SELECT m.app_id,
           count(*) AS modules,
           sum(CASE WHEN CAST(m.users AS DOUBLE) < 0.05 * CAST(p.m1 AS DOUBLE) THEN 1 ELSE 0 END) AS rare_modules,
           CAST(max(m.events) AS DOUBLE) / CAST(max(m.total) AS DOUBLE) AS top_module_share,
           sum((CAST(m.events AS DOUBLE) / CAST(m.total AS DOUBLE)) * (CAST(m.events AS DOUBLE) / CAST(m.total AS DOUBLE))) AS module_hhi
    FROM (SELECT u.app_id, u.module, u.users, u.events,
                 sum(u.events) OVER (PARTITION BY u.app_id) AS total
          FROM module_use u) m
    JOIN per_app p ON p.app_id = m.app_id
    GROUP BY m.app_id
),
pairs AS (
    -- Each pair from both sides; app_overlap is named once (a view is
    -- recomputed wherever it is named).
    SELECT CASE WHEN s.side = 1 THEN o.app_a ELSE o.app_b END AS app_id,
           CASE WHEN s.side = 1 THEN o.app_b ELSE o.app_a END AS other,
           CASE WHEN s.side = 1 THEN o.users_a ELSE o.users_b END AS users,
           CASE WHEN s.side = 1 THEN o.users_b ELSE o.users_a END AS other_users,
           o.people_overlap, o.function_overlap
    FROM app_overlap o CROSS JOIN (VALUES (1), (2)) AS s(side)
),
duplicates AS (
    SELECT app_id, min(other) AS other, max(people_overlap) AS people_overlap, max(function_overlap) AS function_overlap
    FROM pairs
    WHERE people_overlap >= 0.7 AND function_overlap >= 0.5
      AND (other_users > users OR (other_users = users AND other < app_id))
    GROUP BY app_id
),
judged AS (
    SELECT p.*,
           c.name, c.level,
           p.seen1 + p.seen2 + p.seen3 AS months_observed,
           coalesce(md.modules, 0) AS modules,
           coalesce(md.rare_modules, 0) AS rare_modules,
           md.top_module_share, md.module_hhi,
           d.other AS duplicate_of, d.people_overlap, d.function_overlap,
           (p.seen1 = 0 OR p.m1 <= 5 OR CAST(p.m1 AS DOUBLE) < 0.02 * CAST(p.accounts_90d AS DOUBLE))
           AND (p.seen2 = 0 OR p.m2 <= 5 OR CAST(p.m2 AS DOUBLE) < 0.02 * CAST(p.accounts_90d AS DOUBLE))
           AND (p.seen3 = 0 OR p.m3 <= 5 OR CAST(p.m3 AS DOUBLE) < 0.02 * CAST(p.accounts_90d AS DOUBLE)) AS zombie,
           coalesce(md.modules, 0) >= 3 AND coalesce(md.rare_modules, 0) * 2 > coalesce(md.modules, 0) AS low_use
    FROM per_app p
    LEFT JOIN app_catalog c ON c.app_id = p.app_id
    LEFT JOIN modules md ON md.app_id = p.app_id
    LEFT JOIN duplicates d ON d.app_id = p.app_id
)
SELECT app_id,
       coalesce(name, '') AS name,
       coalesce(level, '') AS level,
       accounts_90d,
       CASE WHEN seen1 = 1 THEN m1 END AS real_mau_1,
       CASE WHEN seen2 = 1 THEN m2 END AS real_mau_2,
       CASE WHEN seen3 = 1 THEN m3 END AS real_mau_3,
       months_observed,
       raw_mau_1,
       CAST(faked_events_90d AS DOUBLE) / CAST(events_90d AS DOUBLE) AS faked_share_90d,
       modules, rare_modules, top_module_share, module_hhi,
       CASE WHEN zombie THEN 'zombie'
            WHEN duplicate_of IS NOT NULL THEN 'duplicate_of:' || duplicate_of
            WHEN low_use THEN 'low_use'
            ELSE 'healthy' END AS classification,
       CASE WHEN zombie THEN
                'real monthly users ' || CAST(m1 AS VARCHAR) || ', ' || CAST(m2 AS VARCHAR) || ', ' || CAST(m3 AS VARCHAR)
                || ' (last three months) of ' || CAST(accounts_90d AS VARCHAR) || ' accounts active in 90 days'
            WHEN duplicate_of IS NOT NULL THEN
                CAST(CAST(round(people_overlap * 100) AS BIGINT) AS VARCHAR) || '% of its real users also use ' || duplicate_of
                || ', ' || CAST(CAST(round(function_overlap * 100) AS BIGINT) AS VARCHAR) || '% of functions shared'
            WHEN low_use THEN
                CAST(rare_modules AS VARCHAR) || ' of ' || CAST(modules AS VARCHAR)
                || ' modules used by fewer than 5% of the real monthly users'
            ELSE CAST(m1 AS VARCHAR) || ' real monthly users; ' || CAST(modules AS VARCHAR) || ' modules in use'
       END AS why
FROM judged;
