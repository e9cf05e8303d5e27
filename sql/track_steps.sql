-- track_steps: one row per GPS fix of a patrol, with the step from the
-- patrol's previous fix. Input to the non_human_track detector, which does
-- the rest (outliers, stops, rediscretised turning, replay search) in Rust.
--
-- A patrol is (app_id, account_id, patrol_id): patrol ids come from the
-- sender and are only unique within an account. Two fixes of one patrol at
-- the same instant are one fix (the first by event_id is kept).
--
-- Columns: seq (1-based position in the patrol), t_us (epoch microseconds),
-- dt_s and step_m (seconds and great-circle metres from the previous fix;
-- 0 on the first), speed_mps (step_m / dt_s), bearing_deg (initial
-- bearing of the step, 0 = north, clockwise; NULL when the fix did not
-- move) and turn_deg (change of bearing from the previous step, -180..180;
-- NULL when either step did not move). device_speed_mps is the speed the
-- device reported with the fix (the event's speed_mps, NULL when it sent
-- none), beside speed_mps, the speed the positions imply.
CREATE OR REPLACE VIEW track_steps AS
WITH fixes AS (
    SELECT app_id, account_id, patrol_id, event_id, ts,
           CAST(ts AS BIGINT) AS t_us,
           lat, lon, accuracy_m,
           COALESCE(mock_location, false) AS mock_location,
           device_id, integrity, speed_mps AS device_speed_mps,
           row_number() OVER (
               PARTITION BY app_id, account_id, patrol_id, ts ORDER BY event_id
           ) AS same_instant
    FROM events
    WHERE kind = 'track_point'
      AND patrol_id IS NOT NULL
      AND lat IS NOT NULL
      AND lon IS NOT NULL
),
ordered AS (
    SELECT app_id, account_id, patrol_id, event_id, ts, t_us, lat, lon,
           accuracy_m, mock_location, device_id, integrity, device_speed_mps,
           row_number() OVER w AS seq,
           lag(lat) OVER w AS prev_lat,
           lag(lon) OVER w AS prev_lon,
           lag(t_us) OVER w AS prev_t_us
    FROM fixes
    WHERE same_instant = 1
    WINDOW w AS (PARTITION BY app_id, account_id, patrol_id ORDER BY ts)
),
steps AS (
    SELECT *,
           (t_us - prev_t_us) / 1e6 AS dt,
           haversine_m(prev_lat, prev_lon, lat, lon) AS dist,
           degrees(atan2(
               sin(radians(lon - prev_lon)) * cos(radians(lat)),
               cos(radians(prev_lat)) * sin(radians(lat))
                 - sin(radians(prev_lat)) * cos(radians(lat)) * cos(radians(lon - prev_lon))
           )) AS raw_bearing
    FROM ordered
),
bearings AS (
    SELECT *,
           CASE WHEN dist > 0 THEN (raw_bearing + 360) % 360 END AS bearing
    FROM steps
)
SELECT app_id, account_id, patrol_id, event_id, ts, seq, t_us, lat, lon,
       accuracy_m, mock_location, device_id, integrity,
       COALESCE(dt, 0.0) AS dt_s,
       COALESCE(dist, 0.0) AS step_m,
       CASE WHEN dt > 0 THEN dist / dt END AS speed_mps,
       bearing AS bearing_deg,
       device_speed_mps,
       ((bearing - lag(bearing) OVER (
           PARTITION BY app_id, account_id, patrol_id ORDER BY ts
       ) + 540) % 360) - 180 AS turn_deg
FROM bearings;
