//! The set of keys already in the lake (event ids, dead-letter positions),
//! held as 128-bit hashes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use arrow::array::{Array, AsArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{IoContext, LakeError};

/// The keys are already uniformly random hashes: use their low bits.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Keys seen, as xxh3-128 hashes (a false match needs ~2^64 keys).
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashSet<u128, BuildHasherDefault<PassThrough>>,
}

impl KeySet {
    pub(crate) fn key(bytes: &[u8]) -> u128 {
        xxh3_128(bytes)
    }

    /// Inserts; false when the key was already there.
    pub(crate) fn insert(&mut self, key: u128) -> bool {
        self.keys.insert(key)
    }

    pub(crate) fn contains(&self, key: u128) -> bool {
        self.keys.contains(&key)
    }

    pub(crate) fn remove(&mut self, key: u128) {
        self.keys.remove(&key);
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Adds the hash of every value of string column `column` of a Parquet
    /// file (reads only that column).
    pub(crate) fn load_string_column(
        &mut self,
        path: &Path,
        column: &str,
    ) -> Result<(), LakeError> {
        let file = File::open(path).ctx("open", path)?;
        let read_err = |source| LakeError::ReadParquet {
            path: path.to_path_buf(),
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(read_err)?;
        let idx = builder
            .schema()
            .index_of(column)
            .map_err(|e| read_err(e.into()))?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(read_err)?;
        for batch in reader {
            let batch = batch.map_err(|e| read_err(e.into()))?;
            let col = batch.column(0).as_string::<i32>();
            for i in 0..col.len() {
                if col.is_valid(i) {
                    self.keys.insert(Self::key(col.value(i).as_bytes()));
                }
            }
        }
        Ok(())
    }
}

/// Key of a dead letter: its source position.
pub(crate) fn position_key(kind: &str, source: &str, partition: Option<i32>, offset: i64) -> u128 {
    let mut buf = Vec::with_capacity(source.len() + 32);
    buf.extend_from_slice(kind.as_bytes());
    buf.push(0);
    buf.extend_from_slice(source.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&partition.unwrap_or(-1).to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
    KeySet::key(&buf)
}

/// Adds the key of every dead letter in a `dead_letters` Parquet file.
pub(crate) fn load_dead_letter_keys(set: &mut KeySet, path: &Path) -> Result<(), LakeError> {
    let file = File::open(path).ctx("open", path)?;
    let read_err = |source| LakeError::ReadParquet {
        path: path.to_path_buf(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(read_err)?;
    let schema = builder.schema().clone();
    let idx = |name: &str| schema.index_of(name).map_err(|e| read_err(e.into()));
    let cols = [
        idx("source_kind")?,
        idx("source")?,
        idx("partition")?,
        idx("offset")?,
    ];
    let mask = ProjectionMask::roots(builder.parquet_schema(), cols);
    let reader = builder.with_projection(mask).build().map_err(read_err)?;
    for batch in reader {
        let batch = batch.map_err(|e| read_err(e.into()))?;
        let kind = batch.column(0).as_string::<i32>();
        let source = batch.column(1).as_string::<i32>();
        let partition = batch
            .column(2)
            .as_primitive::<arrow::datatypes::Int32Type>();
        let offset = batch
            .column(3)
            .as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            let p = partition.is_valid(i).then(|| partition.value(i));
            set.insert(position_key(
                kind.value(i),
                source.value(i),
                p,
                offset.value(i),
            ));
        }
    }
    Ok(())
}

/// The event ids the writer checks new events against, bounded: the ids of
/// the latest `keep_days` local days (by event date) are held in memory, so
/// memory follows the recent traffic, not the lake's history. An event of
/// an older day (a phone uploading very late) is checked against the ids
/// of its own day, read from the lake on demand and dropped at the next
/// flush, and against the recent ones. So an `event_id` is never stored
/// twice for one day, nor twice within `keep_days`.
pub(crate) struct EventKeys {
    recent: KeySet,
    by_date: BTreeMap<i32, Vec<u128>>,
    old: HashMap<i32, KeySet>,
    keep_days: i32,
}

impl EventKeys {
    pub(crate) fn new(keep_days: i32) -> Self {
        EventKeys {
            recent: KeySet::default(),
            by_date: BTreeMap::new(),
            old: HashMap::new(),
            keep_days: keep_days.max(1),
        }
    }

    /// Ids held in memory (recent days and loaded old ones).
    pub(crate) fn len(&self) -> usize {
        self.recent.len() + self.old.values().map(KeySet::len).sum::<usize>()
    }

    fn newest(&self) -> Option<i32> {
        self.by_date.keys().next_back().copied()
    }

    /// True when `date` is among the days held in memory.
    fn is_recent(&self, date: i32) -> bool {
        self.by_date.contains_key(&date) || self.newest().is_none_or(|n| date > n - self.keep_days)
    }

    /// Days whose ids a writer opening the lake loads: the newest
    /// `keep_days` of `dates`.
    pub(crate) fn days_to_load(&self, dates: &[i32]) -> Vec<i32> {
        let Some(&newest) = dates.iter().max() else {
            return Vec::new();
        };
        dates
            .iter()
            .copied()
            .filter(|&d| d > newest - self.keep_days)
            .collect()
    }

    /// Records the ids of a stored day (at open).
    pub(crate) fn load_day(&mut self, date: i32, ids: KeySet) {
        let v = self.by_date.entry(date).or_default();
        for k in ids.keys {
            if self.recent.insert(k) {
                v.push(k);
            }
        }
    }

    /// Inserts the id of an event of local day `date`; false when it is a
    /// duplicate. `load` reads the stored ids of an old day.
    pub(crate) fn insert(
        &mut self,
        date: i32,
        key: u128,
        load: impl FnOnce(i32) -> Result<KeySet, LakeError>,
    ) -> Result<bool, LakeError> {
        if self.is_recent(date) {
            if !self.recent.insert(key) {
                return Ok(false);
            }
            self.by_date.entry(date).or_default().push(key);
            return Ok(true);
        }
        if self.recent.contains(key) {
            return Ok(false);
        }
        let day = match self.old.entry(date) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(load(date)?),
        };
        Ok(day.insert(key))
    }

    /// After a flush: forgets the days that fell out of the recent window
    /// and the old days loaded on demand.
    pub(crate) fn evict(&mut self) {
        self.old.clear();
        let Some(newest) = self.newest() else {
            return;
        };
        let keep_from = newest - self.keep_days + 1;
        let stale: Vec<i32> = self.by_date.range(..keep_from).map(|(d, _)| *d).collect();
        for d in stale {
            if let Some(keys) = self.by_date.remove(&d) {
                for k in keys {
                    self.recent.remove(k);
                }
            }
        }
    }
}
