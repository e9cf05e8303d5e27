-- registrations: every new account (kind = 'register') with what the
-- registration_farm detector weighs: the referrer (promoter or promo code),
-- the device, address and attestation it came from, how many registrations
-- that device and that address made in all, the gap since the source's
-- previous registration, and whether the new account ever came back.
--
-- source: the referrer, or `device:` and the device id when there is none
-- (`unknown` without either): the registrations a promoter or phone made.
--
-- referrer_is_account: the referrer is itself an account with activity in
-- the data (an official's own referral code, whose quota the
-- registrations fill), not a promotion code.
--
-- returned: the account has an event on a later local day than its
-- registration. observed_s: how long the data runs after the registration
-- (seconds to the last event in the lake), so "never came back" is only
-- read where there was time to come back.
CREATE OR REPLACE VIEW registrations AS
WITH r AS (
    SELECT event_id, app_id, account_id, device_id, ip, network_id, integrity,
           referrer, claimed_region, region, ts, CAST(ts AS BIGINT) AS t_us,
           event_date,
           COALESCE(referrer, 'device:' || device_id, 'unknown') AS source
    FROM events
    WHERE kind = 'register'
),
activity AS (
    SELECT app_id, account_id, max(event_date) AS last_date
    FROM events
    GROUP BY app_id, account_id
),
horizon AS (
    SELECT CAST(max(ts) AS BIGINT) AS end_us FROM events
),
per_device AS (
    SELECT device_id, count(*) AS device_registrations
    FROM r WHERE device_id IS NOT NULL GROUP BY device_id
),
per_ip AS (
    SELECT ip, count(*) AS ip_registrations
    FROM r WHERE ip IS NOT NULL GROUP BY ip
)
SELECT r.event_id, r.app_id, r.account_id, r.device_id, r.ip, r.network_id,
       r.integrity, r.referrer, r.claimed_region, r.region, r.ts, r.t_us,
       r.event_date, r.source,
       ra.account_id IS NOT NULL AS referrer_is_account,
       a.last_date > r.event_date AS returned,
       (h.end_us - r.t_us) / 1e6 AS observed_s,
       COALESCE(d.device_registrations, 1) AS device_registrations,
       COALESCE(i.ip_registrations, 1) AS ip_registrations,
       (r.t_us - lag(r.t_us) OVER (
           PARTITION BY r.app_id, r.source ORDER BY r.t_us, r.event_id
       )) / 1e6 AS since_source_prev_s
FROM r
CROSS JOIN horizon h
LEFT JOIN activity a ON r.app_id = a.app_id AND r.account_id = a.account_id
LEFT JOIN (SELECT DISTINCT account_id FROM activity) ra ON r.referrer = ra.account_id
LEFT JOIN per_device d ON r.device_id = d.device_id
LEFT JOIN per_ip i ON r.ip = i.ip;
