//! The lake: accepted events as Parquet files under a data directory,
//! partitioned by local event date and `app_id`; dead letters beside them;
//! DataFusion SQL over both.
//!
//! ```text
//! <dir>/events/<YYYY-MM-DD>/<app_id>/part-*.parquet
//! <dir>/dead_letters/<YYYY-MM-DD>/part-*.parquet   (date received)
//! <dir>/_tmp/                                      (files being written)
//! <dir>/_compactions/*.json                        (compaction intents)
//! <dir>/LOCK                                       (one writer at a time)
//! ```
//!
//! Durability: a file is written under `_tmp`, fsynced, renamed into place
//! and its directory fsynced before [`LakeWriter::flush`] returns, so a
//! caller may acknowledge its source (commit Kafka offsets) right after.
//! Idempotency: the writer keeps the set of `event_id`s in the lake (loaded
//! at open) and drops any event it already holds.

mod compact;
mod dedup;
mod dictkeys;
#[cfg(test)]
mod differential;
mod distinct;
mod eager;
mod error;
mod footers;
mod layout;
pub mod ndv;
mod options;
mod query;
mod shared;
#[cfg(test)]
mod testlake;
mod writer;

pub use compact::CompactStats;
pub use dictkeys::{DictionaryKeyAggregateExec, DictionaryKeys, DICTIONARY_COLUMNS};
pub use distinct::MixedDistinctToGroupBy;
pub use eager::AggregateBelowJoin;
pub use error::LakeError;
pub use footers::CountsFromFooters;
pub use layout::{escape_app_id, LakeLayout};
pub use options::{rule_options, RuleOptions};
pub use query::{
    dead_letters_table, events_table, events_table_with_schema, format_batches, is_vanished_file,
    lake_context, open_range_session, open_session, read_only_options, retry_vanished,
    rewrite_nodes, run_sql, switched_off, vanished_backoff, vanished_delay, without_rules,
    OutputFormat, QueryError, CATALOG, GROUNDTRUTH_RULES, VANISHED_RETRIES,
};
pub use shared::{SharedExec, SharedNode, SharedSubplans, SharingQueryPlanner};
pub use writer::{Appended, FlushStats, LakeOptions, LakeWriter, ReadGate};
