//! The lake: accepted events as Parquet files under a data directory,
//! partitioned by local event date and `app_id`; dead letters beside them.
//! Arrow and Parquet only: SQL over the lake is `groundtruth-sql`'s.
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
mod error;
mod files;
mod layout;
mod options;
mod writer;

pub use compact::{vanished_delay, CompactStats, VANISHED_RETRIES};
pub use error::LakeError;
pub use layout::{escape_app_id, LakeLayout};
pub use options::LakeOptions;
pub use writer::{Appended, FlushStats, LakeWriter, ReadGate};
