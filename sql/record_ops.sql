-- record_ops: every registry operation (record_create / _update / _delete)
-- with the previous operation on the same record (same app, registry and
-- record_key), so a delete followed by a create of the same record, or an
-- update that changed nothing, can be counted.
--
-- re_entry: a create of a record whose previous operation was its delete.
-- no_op: an update with changed_fields = 0. since_prev_s: seconds since the
-- previous operation on the record (NULL for its first in the data).
CREATE OR REPLACE VIEW record_ops AS
WITH o AS (
    SELECT event_id, app_id, account_id, region, registry, record_key, kind,
           changed_fields, ts, CAST(ts AS BIGINT) AS t_us, event_date
    FROM events
    WHERE kind IN ('record_create', 'record_update', 'record_delete')
      AND record_key IS NOT NULL
),
ordered AS (
    SELECT *,
           lag(kind) OVER k AS prev_kind,
           lag(account_id) OVER k AS prev_account_id,
           (t_us - lag(t_us) OVER k) / 1e6 AS since_prev_s
    FROM o
    WINDOW k AS (PARTITION BY app_id, registry, record_key ORDER BY t_us, event_id)
)
SELECT event_id, app_id, account_id, region, registry, record_key, kind,
       changed_fields, ts, t_us, event_date, prev_kind, prev_account_id,
       since_prev_s,
       (kind = 'record_create' AND COALESCE(prev_kind = 'record_delete', false)) AS re_entry,
       (kind = 'record_update' AND COALESCE(changed_fields = 0, false)) AS no_op
FROM ordered;
