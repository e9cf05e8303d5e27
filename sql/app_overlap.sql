-- app_overlap: one row per pair of apps (app_a < app_b) that share real users
-- in the 90 days up to the latest day in the lake. A real user of an app is
-- an account with at least one active day there that no finding flags.
-- people_overlap: shared real users over the smaller app's real users (1 =
-- everyone of the smaller app also uses the other). Functions are the app
-- catalog's `functions` for a listed app, else the modules its events name;
-- function_overlap is their Jaccard index (shared / in either, 0..1).
-- Two apps serving the same people with the same functions are duplicates
-- (app_health names the smaller one duplicate_of the bigger).
CREATE OR REPLACE VIEW app_overlap AS
WITH last_day AS (
    SELECT arrow_cast(max(event_date), 'Int32') AS d FROM events
),
users AS (
    -- Each app's real users, with their number (a window, not a second CTE
    -- over users: a CTE is computed again wherever it is named).
    SELECT app_id, account_id, count(*) OVER (PARTITION BY app_id) AS app_users
    FROM (SELECT DISTINCT a.app_id, a.account_id
          FROM account_days a CROSS JOIN last_day l
          WHERE NOT a.flagged AND arrow_cast(a.day, 'Int32') > l.d - 90)
),
shared AS (
    SELECT u1.app_id AS app_a, u2.app_id AS app_b, count(*) AS shared_users,
           max(u1.app_users) AS users_a, max(u2.app_users) AS users_b
    FROM users u1 JOIN users u2 ON u1.account_id = u2.account_id AND u1.app_id < u2.app_id
    GROUP BY u1.app_id, u2.app_id
),
functions AS (
    SELECT DISTINCT app_id, function
    FROM (SELECT app_id, unnest(functions) AS function FROM app_catalog)
    UNION
    SELECT DISTINCT e.app_id, e.module AS function
    FROM events e
    WHERE e.module IS NOT NULL AND e.app_id NOT IN (SELECT app_id FROM app_catalog)
),
function_counts AS (
    SELECT app_id, count(*) AS functions FROM functions GROUP BY app_id
),
shared_functions AS (
    SELECT f1.app_id AS app_a, f2.app_id AS app_b, count(*) AS shared_functions
    FROM functions f1 JOIN functions f2 ON f1.function = f2.function AND f1.app_id < f2.app_id
    GROUP BY f1.app_id, f2.app_id
)
SELECT s.app_a, s.app_b,
       s.users_a, s.users_b, s.shared_users,
       CAST(s.shared_users AS DOUBLE)
           / CAST(CASE WHEN s.users_a < s.users_b THEN s.users_a ELSE s.users_b END AS DOUBLE) AS people_overlap,
       coalesce(fa.functions, 0) AS functions_a, coalesce(fb.functions, 0) AS functions_b,
       coalesce(sf.shared_functions, 0) AS shared_functions,
       CASE WHEN coalesce(fa.functions, 0) + coalesce(fb.functions, 0) - coalesce(sf.shared_functions, 0) = 0 THEN 0.0
            ELSE CAST(coalesce(sf.shared_functions, 0) AS DOUBLE)
                 / CAST(coalesce(fa.functions, 0) + coalesce(fb.functions, 0) - coalesce(sf.shared_functions, 0) AS DOUBLE)
       END AS function_overlap
FROM shared s
LEFT JOIN function_counts fa ON fa.app_id = s.app_a
LEFT JOIN function_counts fb ON fb.app_id = s.app_b
LEFT JOIN shared_functions sf ON sf.app_a = s.app_a AND sf.app_b = s.app_b;
