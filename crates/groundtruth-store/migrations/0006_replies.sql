-- The review store, version 6: replies. A unit (the people a case is
-- about) answers a decided case; the reply is evidence on the case, shown
-- to its inspectors, and audited. `region` is the replying token's scope.
CREATE TABLE replies (
    reply_id {{id}},
    case_id BIGINT NOT NULL,
    author TEXT NOT NULL,
    region TEXT NOT NULL,
    text TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX replies_by_case ON replies (case_id, reply_id);
