//! The set of keys already in the lake (event ids, dead-letter positions),
//! held as 128-bit hashes.

use std::collections::HashSet;
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
