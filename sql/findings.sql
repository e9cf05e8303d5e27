-- findings: one row per finding in the review store that the caller may see
-- (its case lies in the caller's region scope), with what the inspectors made
-- of it. `review` is pending (not decided yet), needs_info, confirmed or
-- dismissed; a finding not raised because the same evidence was decided
-- before carries that decision (`raised` is false). `first_day` and
-- `last_day` are the local days its evidence spans; `accounts`, `devices`
-- and `patrol_ids` are lists; `evidence` is the contract's evidence object
-- as JSON text; `app_id` and `region` are its case's app and unit.
CREATE OR REPLACE VIEW findings AS
SELECT finding_id, case_id, detector, app_id, region, score,
       window_start, window_end, first_day, last_day,
       n_accounts, accounts, devices, patrol_ids,
       reason, evidence, raised, review
FROM internal.review_findings;
