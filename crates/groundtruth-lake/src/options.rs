//! The writer's tuning.

use groundtruth_event::DayZone;

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// Zone of the `event_date` partition (contract: Asia/Shanghai).
    pub zone: DayZone,
    /// Files with fewer rows than half of this are merged by compaction,
    /// up to this many rows per merged file.
    pub target_file_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// A partition is compacted once it holds this many small files.
    pub compact_min_files: usize,
    /// Local days of event ids held in memory for deduplication (older
    /// days are read from the lake when an event for them arrives).
    pub dedup_days: i32,
    /// Set when several writers (live-service instances) share the lake:
    /// this writer's name (letters, digits, `-`, `_`). Each member writes
    /// and compacts only its own files; see [`LakeWriter::resync`](crate::LakeWriter::resync).
    pub member: Option<String>,
}

impl Default for LakeOptions {
    fn default() -> Self {
        LakeOptions {
            zone: DayZone::default(),
            target_file_rows: 1_000_000,
            row_group_rows: 128 * 1024,
            compact_min_files: 8,
            dedup_days: 8,
            member: None,
        }
    }
}
