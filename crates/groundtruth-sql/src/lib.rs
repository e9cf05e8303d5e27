//! SQL over the lake: the DataFusion session (tables `events` and
//! `dead_letters` over the lake's Parquet files), the views of `sql/` and
//! the functions they use, groundtruth's optimizer rules and the plan nodes
//! they introduce.
//!
//! ```text
//! session.rs   the session builder, running a query, result formats
//! views.rs     the views of sql/ (one list) and their functions
//! options.rs   the rules' switches, a DataFusion config extension
//! plan.rs      what rules and nodes share (rewrite bottom up, one child)
//! rules/       one optimizer rule per file
//! exec/        one plan node per file
//! ndv.rs       distinct counts for join planning
//! ```
//!
//! Storage (writing, deduplication, compaction) is `groundtruth-lake`'s and
//! builds no DataFusion; this crate reads what it wrote.

mod error;
pub mod exec;
pub mod ndv;
mod options;
pub(crate) mod plan;
pub mod rules;
mod session;
pub mod views;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod plans;
#[cfg(test)]
mod testlake;

pub use error::SqlError;
pub use exec::DictionaryKeyAggregateExec;
pub use options::{rule_options, RuleOptions};
pub use plan::rewrite_nodes;
pub use session::{
    dead_letters_table, events_table, events_table_with_schema, format_batches, is_vanished_file,
    lake_context, open_range_session, open_session, read_only_options, retry_vanished, run_sql,
    vanished_backoff, without_rules, OutputFormat, CATALOG, GROUNDTRUTH_RULES,
};
pub use views::{attr_text, haversine_m, register_all_views, register_event_views, View, VIEWS};
