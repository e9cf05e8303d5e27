-- device_profile: per device, how many accounts used it, on how many
-- networks, on how many local days, and how far its reported positions
-- spread. A farm phone serves one account from one network and never moves;
-- a person's phone goes between home, office and the street.
--
-- spread_m: root-mean-square distance of the session positions from their
-- mean, metres (equirectangular about the mean latitude; NULL when the
-- device never shared a position).
CREATE OR REPLACE VIEW device_profile AS
SELECT device_id,
       count(DISTINCT account_id) AS accounts,
       count(DISTINCT net_key) AS networks,
       count(DISTINCT event_date) AS days,
       count(*) AS sessions,
       count(lat) AS located_sessions,
       sqrt(power(stddev_pop(lat) * 111195.0, 2)
            + power(stddev_pop(lon) * 111195.0 * cos(radians(avg(lat))), 2)) AS spread_m
FROM sessions
WHERE device_id IS NOT NULL
GROUP BY device_id;
