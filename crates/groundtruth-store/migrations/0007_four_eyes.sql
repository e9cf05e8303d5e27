-- The review store, version 7: four eyes. A confirmation of a case whose
-- detector needs a second inspector (store.four_eyes) waits on the case,
-- proposed, until another inspector signs it off; the verdict then names
-- both.
ALTER TABLE cases ADD COLUMN proposed_by TEXT;
ALTER TABLE cases ADD COLUMN proposed_note TEXT;
ALTER TABLE cases ADD COLUMN proposed_us BIGINT;
ALTER TABLE verdicts ADD COLUMN countersigned_by TEXT;
