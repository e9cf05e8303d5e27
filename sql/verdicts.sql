-- verdicts: one row per decision an inspector recorded on a case the caller
-- may see: the verdict (confirmed, dismissed, needs_info), the note, who and
-- when, and the detectors whose findings were decided.
CREATE OR REPLACE VIEW verdicts AS
SELECT verdict_id, case_id, region, verdict, note, author, at, detectors
FROM internal.review_verdicts;
