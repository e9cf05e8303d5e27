//! groundtruth's own optimizer rules, one per file. Each is switched by
//! its [`RuleOptions`](crate::RuleOptions) field (`SET groundtruth.<rule> =
//! false`) and held equal to plain DataFusion by the differential test.

pub mod aggregate_below_join;
pub mod counts_from_footers;
pub mod dictionary_keys;
pub mod mixed_distinct_to_group_by;
pub mod shared_subplans;

pub use aggregate_below_join::AggregateBelowJoin;
pub use counts_from_footers::CountsFromFooters;
pub use dictionary_keys::DictionaryKeys;
pub use mixed_distinct_to_group_by::MixedDistinctToGroupBy;
pub use shared_subplans::SharedSubplans;
