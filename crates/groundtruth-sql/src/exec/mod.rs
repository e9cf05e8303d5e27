//! groundtruth's own plan nodes, one per file: what the
//! [rules](crate::rules) plan in DataFusion's place.

pub mod dictionary_key_aggregate;
pub mod shared;

pub use dictionary_key_aggregate::DictionaryKeyAggregateExec;
pub use shared::{SharedExec, SharedNode, SharingQueryPlanner};
