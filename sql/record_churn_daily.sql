-- record_churn_daily: per account, app, registry and local day, how many
-- registry operations were churn (a record deleted and entered again, or an
-- update that changed nothing) out of all, and over how many records.
-- Input to the record_churn detector, which sets each count against the
-- day's baseline of the account's peers.
CREATE OR REPLACE VIEW record_churn_daily AS
SELECT app_id, account_id, registry, event_date,
       min(region) AS region,
       count(*) AS ops,
       sum(CASE WHEN kind = 'record_create' THEN 1 ELSE 0 END) AS creates,
       sum(CASE WHEN kind = 'record_update' THEN 1 ELSE 0 END) AS updates,
       sum(CASE WHEN kind = 'record_delete' THEN 1 ELSE 0 END) AS deletes,
       sum(CASE WHEN re_entry THEN 1 ELSE 0 END) AS re_entries,
       sum(CASE WHEN no_op THEN 1 ELSE 0 END) AS no_op_updates,
       count(DISTINCT record_key) AS records,
       count(DISTINCT CASE WHEN re_entry THEN record_key END) AS re_entered_records,
       CAST(min(t_us) AS BIGINT) AS first_us,
       CAST(max(t_us) AS BIGINT) AS last_us
FROM record_ops
GROUP BY app_id, account_id, registry, event_date;
