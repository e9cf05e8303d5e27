-- cases: one row per case the caller may see. A case groups the findings
-- about one account or one group of accounts of an app. `status` is open,
-- needs_info or closed; `verdict` the last decision (confirmed, dismissed,
-- needs_info, or NULL); `score` the highest of its raised findings;
-- `detectors` those that raised it; `region` the unit most of its accounts
-- belong to and `regions` all of them; window_* the span of its evidence.
CREATE OR REPLACE VIEW cases AS
SELECT case_id, app_id, region, regions, status, verdict, assignee, score,
       detectors, n_accounts, accounts, n_findings, n_raised,
       window_start, window_end, created_at, updated_at
FROM internal.review_cases;
