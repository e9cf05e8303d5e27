-- session_chain: every session on a network in start order, with the gap
-- since every earlier session on that network had ended. One person working
-- a row of phones leaves a chain of sessions that never overlap and follow
-- each other within seconds; colleagues on an office Wi-Fi overlap.
--
-- gap_s = start - (latest end of all earlier sessions on the same net_key),
-- in seconds: negative when this session began before an earlier one ended
-- (they overlap), NULL for the network's first session. seq is the 1-based
-- position on the network (ties broken by account and session id, so the
-- order is total and reruns agree).
CREATE OR REPLACE VIEW session_chain AS
SELECT app_id, account_id, session_id, device_id, net_key, region,
       start_us, end_us, duration_s, event_date, lat, lon,
       row_number() OVER (
           PARTITION BY net_key ORDER BY start_us, account_id, session_id
       ) AS seq,
       (start_us - max(end_us) OVER (
           PARTITION BY net_key ORDER BY start_us, account_id, session_id
           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
       )) / 1e6 AS gap_s
FROM sessions
WHERE net_key IS NOT NULL;
