//! The analysts' SQL guard on arbitrary text: it never panics, never
//! overflows the stack on deep nesting, and never accepts a statement that
//! is not a single read-only query.
#![no_main]

use groundtruth_query::{guard, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    if guard::check(sql, &limits).is_ok() {
        // Accepted: one statement, and a query (or EXPLAIN of one).
        let lower = sql.to_ascii_lowercase();
        for verb in ["insert ", "update ", "delete ", "drop ", "create ", "copy ", "alter "] {
            if lower.trim_start().starts_with(verb) {
                panic!("the guard accepted a {verb}statement: {sql:?}");
            }
        }
    }
});
