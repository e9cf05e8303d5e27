//! Arbitrary SQL text through the whole analysts' path: the guard, then
//! planning and running in a scoped session over an empty lake, under the
//! service's limits. Whatever the text, the answer is a result or an
//! error: no panic escapes, no stack overflow, no allocation past the
//! limits (libFuzzer's `-rss_limit_mb` catches one), no hang past the
//! time limit.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use groundtruth_query::{AppCatalog, Limits, QueryService};
use groundtruth_store::{Principal, ReviewStore, Role, Scope, StoreOptions};
use libfuzzer_sys::fuzz_target;

struct World {
    rt: tokio::runtime::Runtime,
    service: Arc<QueryService>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = rt
            .block_on(ReviewStore::open(
                &dir.path().join("review.db").display().to_string(),
                &StoreOptions::default(),
            ))
            .expect("store");
        let service = Arc::new(QueryService::new(
            dir.path().join("lake"),
            Default::default(),
            store,
            AppCatalog::default(),
            Limits {
                timeout: Duration::from_secs(5),
                memory_bytes: 64 << 20,
                server_memory_bytes: 128 << 20,
                ..Limits::default()
            },
        ));
        World {
            rt,
            service,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let w = world();
    let who = Principal {
        token_id: String::new(),
        subject: "fuzz".into(),
        role: Role::Analyst,
        scope: Scope::parse("4501").expect("scope"),
    };
    // A panic inside the query is caught by the query runtime and comes
    // back as an internal error; one here would be ours.
    let _ = w.rt.block_on(w.service.run(&who, "http", sql, Some(10)));
});
