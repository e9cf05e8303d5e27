-- The review store, version 5: each account of a case with its unit, so
-- that an inspector whose scope covers only some of a case's regions sees
-- the accounts of those regions and not the others. NULL: not known
-- (findings stored before the detection pipeline wrote each account's
-- unit); such accounts are hidden from a caller who does not see the
-- whole case.
ALTER TABLE case_accounts ADD COLUMN region TEXT;
