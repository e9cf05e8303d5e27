-- reports: every report_submit with its account's previous report, so that
-- near-copies can be counted: the same category from (almost) the same spot
-- within the hour. A unit told to "report more" files runs of such copies;
-- a unit with a genuinely bad week files more reports about different
-- things in different places.
--
-- from_prev_m: great-circle metres from the account's previous report
-- (NULL when either has no position); since_prev_s: seconds since it.
-- near_copy: same category, within max(25 m, 2 x the reported accuracy)
-- and 3600 s of the previous report. summary: the report's free text
-- (`attrs.summary`, optional in the contract; NULL when absent or not a
-- string).
CREATE OR REPLACE VIEW reports AS
WITH r AS (
    SELECT event_id, app_id, account_id, region, registry, category,
           attr_text(attrs, 'summary') AS summary, session_id,
           ts, CAST(ts AS BIGINT) AS t_us, event_date,
           lat, lon, accuracy_m
    FROM events
    WHERE kind = 'report_submit'
),
ordered AS (
    SELECT *,
           lag(category) OVER a AS prev_category,
           lag(lat) OVER a AS prev_lat,
           lag(lon) OVER a AS prev_lon,
           (t_us - lag(t_us) OVER a) / 1e6 AS since_prev_s
    FROM r
    WINDOW a AS (PARTITION BY app_id, account_id ORDER BY t_us, event_id)
),
measured AS (
    SELECT *,
           haversine_m(prev_lat, prev_lon, lat, lon) AS from_prev_m
    FROM ordered
)
SELECT event_id, app_id, account_id, region, registry, category, summary, session_id,
       ts, t_us, event_date, lat, lon, accuracy_m, since_prev_s, from_prev_m,
       COALESCE(category = prev_category
                AND from_prev_m <= greatest(25.0, 2 * COALESCE(accuracy_m, 0.0))
                AND since_prev_s <= 3600, false) AS near_copy
FROM measured;
