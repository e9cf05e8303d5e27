-- check_ins: every check-in (打卡) with what the bulk_check_in detector
-- weighs: how many accounts the same device clocked in that day, how long
-- after the device's previous check-in, how many check-ins share these exact
-- coordinates, and how far the check-in is from its duty point.
--
-- A duty point's place is learnt from the data: the median over the accounts
-- claiming that point_id in that app of each account's median position (so
-- one device stamping many copies counts once per account, and a minority
-- of far-away accounts does not move it); point_accounts is how many.
-- from_point_m is the great-circle distance to it, metres (haversine_m;
-- NULL when the check-in has no position or no point).
-- same_spot_*: check-ins, accounts and days at exactly this (lat, lon); phone
-- GPS never repeats a fix to the last digit, so more than one is a copy.
CREATE OR REPLACE VIEW check_ins AS
WITH c AS (
    SELECT event_id, app_id, account_id, device_id, region, point_id,
           network_id, ip, ts, CAST(ts AS BIGINT) AS t_us, event_date,
           lat, lon, accuracy_m, COALESCE(mock_location, false) AS mock_location
    FROM events
    WHERE kind = 'check_in'
),
account_points AS (
    SELECT app_id, point_id, account_id,
           median(lat) AS lat,
           median(lon) AS lon
    FROM c
    WHERE point_id IS NOT NULL AND lat IS NOT NULL
    GROUP BY app_id, point_id, account_id
),
points AS (
    SELECT app_id, point_id,
           median(lat) AS point_lat,
           median(lon) AS point_lon,
           count(*) AS point_accounts
    FROM account_points
    GROUP BY app_id, point_id
),
spots AS (
    SELECT lat, lon,
           count(*) AS same_spot_check_ins,
           count(DISTINCT account_id) AS same_spot_accounts,
           count(DISTINCT event_date) AS same_spot_days
    FROM c
    WHERE lat IS NOT NULL
    GROUP BY lat, lon
),
device_days AS (
    SELECT device_id, event_date,
           count(DISTINCT account_id) AS device_day_accounts,
           count(*) AS device_day_check_ins
    FROM c
    WHERE device_id IS NOT NULL
    GROUP BY device_id, event_date
)
SELECT c.event_id, c.app_id, c.account_id, c.device_id, c.region, c.point_id,
       c.network_id, c.ip, c.ts, c.t_us, c.event_date,
       c.lat, c.lon, c.accuracy_m, c.mock_location,
       p.point_accounts,
       haversine_m(p.point_lat, p.point_lon, c.lat, c.lon) AS from_point_m,
       COALESCE(s.same_spot_check_ins, 0) AS same_spot_check_ins,
       COALESCE(s.same_spot_accounts, 0) AS same_spot_accounts,
       COALESCE(s.same_spot_days, 0) AS same_spot_days,
       COALESCE(d.device_day_accounts, 1) AS device_day_accounts,
       COALESCE(d.device_day_check_ins, 1) AS device_day_check_ins,
       (c.t_us - lag(c.t_us) OVER (
           PARTITION BY c.device_id, c.event_date ORDER BY c.t_us, c.event_id
       )) / 1e6 AS since_device_prev_s
FROM c
LEFT JOIN points p ON c.app_id = p.app_id AND c.point_id = p.point_id
LEFT JOIN spots s ON c.lat = s.lat AND c.lon = s.lon
LEFT JOIN device_days d ON c.device_id = d.device_id AND c.event_date = d.event_date;
