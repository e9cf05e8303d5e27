//! Merging small files of a partition, crash-safely.
//!
//! Protocol: write the merged file under `_tmp` and fsync it; write an
//! intent (`_compactions/<name>.json`: output and inputs) and fsync it;
//! rename the output into the partition; delete the inputs; delete the
//! intent. On open, [`recover`] completes any intent whose output is in
//! place (deletes leftover inputs) and drops the others, so a crash at any
//! point leaves each row in exactly one file.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, LakeError};
use crate::files::{publish, write_parquet};
use crate::layout::{parquet_files, sync_dir, LakeLayout};
use crate::options::LakeOptions;

/// What compaction did.
#[derive(Debug, Default, Clone)]
pub struct CompactStats {
    pub merged_files: usize,
    pub output_files: usize,
    pub rows: usize,
}

impl CompactStats {
    pub(crate) fn add(&mut self, o: &CompactStats) {
        self.merged_files += o.merged_files;
        self.output_files += o.output_files;
        self.rows += o.rows;
    }
}

#[derive(Serialize, Deserialize)]
struct Intent {
    output: PathBuf,
    inputs: Vec<PathBuf>,
}

/// Finishes or abandons interrupted compactions and clears `_tmp`.
pub(crate) fn recover(layout: &LakeLayout) -> Result<(), LakeError> {
    let dir = layout.intents_dir();
    let entries = std::fs::read_dir(&dir).ctx("list directory", &dir)?;
    for entry in entries {
        let path = entry.ctx("list directory", &dir)?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read(&path).ctx("read", &path)?;
        match serde_json::from_slice::<Intent>(&text) {
            Ok(intent) => {
                if intent.output.exists() {
                    for input in &intent.inputs {
                        match std::fs::remove_file(input) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e).ctx("remove compacted input", input),
                        }
                    }
                    tracing::warn!(output = %intent.output.display(), "completed an interrupted compaction");
                } else {
                    tracing::warn!(output = %intent.output.display(), "rolled back an interrupted compaction");
                }
            }
            // An intent is written to `_tmp` first and renamed, so a torn
            // intent means its output was never renamed in: ignore it.
            Err(source) => {
                tracing::warn!(path = %path.display(), error = %source, "ignoring unreadable compaction intent");
            }
        }
        std::fs::remove_file(&path).ctx("remove", &path)?;
    }
    sync_dir(&dir)?;
    let tmp = layout.tmp_dir();
    for entry in std::fs::read_dir(&tmp).ctx("list directory", &tmp)? {
        let path = entry.ctx("list directory", &tmp)?.path();
        if path.is_dir() {
            continue; // a member's own directory
        }
        std::fs::remove_file(&path).ctx("remove", &path)?;
    }
    Ok(())
}

fn row_count(path: &Path) -> Result<usize, LakeError> {
    let file = File::open(path).ctx("open", path)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| {
        LakeError::ReadParquet {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(b.metadata().file_metadata().num_rows() as usize)
}

/// Merges the small files directly in `dir` when there are at least
/// `min_files` of them.
pub(crate) fn compact_dir(
    layout: &LakeLayout,
    dir: &Path,
    opts: &LakeOptions,
    min_files: usize,
    name: &str,
    props: WriterProperties,
) -> Result<CompactStats, LakeError> {
    let mut small = Vec::new();
    let own = layout.file_prefix();
    for f in parquet_files(dir)? {
        if f.parent() != Some(dir) {
            continue;
        }
        // A member merges only its own files: two members never merge the
        // same inputs.
        if !f
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&own))
        {
            continue;
        }
        let rows = row_count(&f)?;
        if rows < opts.target_file_rows / 2 {
            small.push((f, rows));
        }
    }
    let mut stats = CompactStats::default();
    if small.len() < min_files.max(2) {
        return Ok(stats);
    }
    // Group consecutive small files up to the target size.
    let mut groups: Vec<Vec<(PathBuf, usize)>> = vec![Vec::new()];
    let mut rows_in_group = 0;
    for (f, rows) in small {
        if rows_in_group + rows > opts.target_file_rows && !groups.last().is_some_and(Vec::is_empty)
        {
            groups.push(Vec::new());
            rows_in_group = 0;
        }
        rows_in_group += rows;
        if let Some(g) = groups.last_mut() {
            g.push((f, rows));
        }
    }
    for (i, group) in groups.into_iter().enumerate() {
        if group.len() < 2 {
            continue;
        }
        let out_name = format!("{}-c{i}.parquet", name.trim_end_matches(".parquet"));
        let inputs: Vec<PathBuf> = group.iter().map(|(f, _)| f.clone()).collect();
        let rows = merge(layout, dir, &inputs, &out_name, props.clone())?;
        stats.merged_files += inputs.len();
        stats.output_files += 1;
        stats.rows += rows;
    }
    Ok(stats)
}

fn merge(
    layout: &LakeLayout,
    dir: &Path,
    inputs: &[PathBuf],
    out_name: &str,
    props: WriterProperties,
) -> Result<usize, LakeError> {
    let tmp = layout.tmp_dir().join(format!("{out_name}.tmp"));
    let first = File::open(&inputs[0]).ctx("open", &inputs[0])?;
    let schema = ParquetRecordBatchReaderBuilder::try_new(first)
        .map_err(|source| LakeError::ReadParquet {
            path: inputs[0].clone(),
            source,
        })?
        .schema()
        .clone();
    let mut rows = 0usize;
    let readers = inputs.iter().map(|path| {
        let file = File::open(path).ctx("open", path)?;
        ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(64 * 1024).build())
            .map_err(|source| LakeError::ReadParquet {
                path: path.clone(),
                source,
            })
            .map(|r| (path.clone(), r))
    });
    let batches = readers.flat_map(|r| -> Box<dyn Iterator<Item = Result<_, LakeError>>> {
        match r {
            Err(e) => Box::new(std::iter::once(Err(e))),
            Ok((path, reader)) => Box::new(reader.map(move |b| {
                b.map_err(|e| LakeError::ReadParquet {
                    path: path.clone(),
                    source: e.into(),
                })
            })),
        }
    });
    let counted = batches.inspect(|b| {
        if let Ok(b) = b {
            rows += b.num_rows();
        }
    });
    write_parquet(&tmp, schema, counted, props)?;

    let output = dir.join(out_name);
    let intent = Intent {
        output: output.clone(),
        inputs: inputs.to_vec(),
    };
    let intent_tmp = layout.tmp_dir().join(format!("{out_name}.intent.tmp"));
    let intent_path = layout.intents_dir().join(format!("{out_name}.json"));
    let body = serde_json::to_vec(&intent).map_err(|source| LakeError::Intent {
        path: intent_path.clone(),
        source,
    })?;
    {
        let f = File::create(&intent_tmp).ctx("create", &intent_tmp)?;
        std::io::Write::write_all(&mut &f, &body).ctx("write", &intent_tmp)?;
        f.sync_all().ctx("fsync", &intent_tmp)?;
    }
    std::fs::rename(&intent_tmp, &intent_path).ctx("move into place", &intent_path)?;
    sync_dir(&layout.intents_dir())?;

    publish(&tmp, dir, out_name)?;
    for input in inputs {
        std::fs::remove_file(input).ctx("remove compacted input", input)?;
    }
    sync_dir(dir)?;
    std::fs::remove_file(&intent_path).ctx("remove", &intent_path)?;
    Ok(rows)
}

/// How often a reader (a query, the writer loading its keys) tries again when a file it listed was compacted away.
pub const VANISHED_RETRIES: usize = 6;

/// The pause before retry `attempt` (0-based) of a read whose file was
/// compacted away: 25 ms doubling (1.6 s over all retries), so a lake
/// being compacted file after file (a backlog catching up) settles
/// instead of racing every retry.
pub fn vanished_delay(attempt: usize) -> std::time::Duration {
    std::time::Duration::from_millis(25u64 << attempt.min(6))
}
