-- Devices that carry many accounts (a phone farm's signature).
SELECT device_id, count(DISTINCT account_id) AS accounts, count(*) AS events
FROM events WHERE device_id IS NOT NULL
GROUP BY device_id HAVING count(DISTINCT account_id) > 1
ORDER BY accounts DESC, device_id LIMIT 50
