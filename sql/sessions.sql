-- sessions: one row per app session, the unit the phone_farm detector
-- works on. A session is (app_id, account_id, session_id): session ids come
-- from the sender and are only unique within an account's app.
--
-- start/end are the first and last event of the session (session_start and
-- session_end when both arrived; any events in between otherwise), so a
-- session whose end never arrived has the length of what was seen.
-- net_key is where the phone was on the network: the hashed Wi-Fi/cell id
-- when the app sent one, else `ip:` and the client address. lat/lon are the
-- mean reported position (NULL when the phone shares none), event_date the
-- local day of the start.
CREATE OR REPLACE VIEW sessions AS
SELECT app_id, account_id, session_id,
       min(region) AS region,
       min(device_id) AS device_id,
       min(network_id) AS network_id,
       min(ip) AS ip,
       COALESCE(min(network_id), 'ip:' || min(ip)) AS net_key,
       min(ts) AS start_ts,
       max(ts) AS end_ts,
       CAST(min(ts) AS BIGINT) AS start_us,
       CAST(max(ts) AS BIGINT) AS end_us,
       (CAST(max(ts) AS BIGINT) - CAST(min(ts) AS BIGINT)) / 1e6 AS duration_s,
       min(event_date) AS event_date,
       avg(lat) AS lat,
       avg(lon) AS lon,
       count(*) AS events,
       min(module) AS module
FROM events
WHERE session_id IS NOT NULL
GROUP BY app_id, account_id, session_id;
