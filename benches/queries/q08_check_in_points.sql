-- The most used check-in points and how many people use them.
SELECT point_id, count(*) AS check_ins, count(DISTINCT account_id) AS accounts,
       avg(accuracy_m) AS mean_accuracy_m
FROM events WHERE kind = 'check_in' AND point_id IS NOT NULL
GROUP BY point_id ORDER BY check_ins DESC, point_id LIMIT 20
