-- flagged_accounts: one row per finding, app and account that a finding names
-- and no inspector dismissed (its review is pending, needs_info or
-- confirmed), with the local days its evidence spans. "Flagged" in the
-- metrics views means exactly this: a detector says the activity is faked
-- and nobody has shown otherwise.
CREATE OR REPLACE VIEW flagged_accounts AS
SELECT app_id, account_id, detector, finding_id, first_day, last_day, review
FROM finding_accounts
WHERE review <> 'dismissed';
