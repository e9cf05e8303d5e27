//! One Parquet file written durably: written and fsynced under a temporary
//! name, then renamed into its partition and the directories fsynced.

use std::fs::File;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::error::{IoContext, LakeError};
use crate::layout::sync_dir;

/// Writes batches to a new file at `path` and fsyncs it.
pub(crate) fn write_parquet(
    path: &Path,
    schema: SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch, LakeError>>,
    props: WriterProperties,
) -> Result<(), LakeError> {
    let file = File::create(path).ctx("create", path)?;
    let perr = |source| LakeError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(perr)?;
    for batch in batches {
        writer.write(&batch?).map_err(perr)?;
    }
    let file = writer.into_inner().map_err(perr)?;
    file.sync_all().ctx("fsync", path)?;
    Ok(())
}

/// Moves a finished temp file into `dir` under `name` and makes the rename
/// durable. Returns the file size.
pub(crate) fn publish(tmp: &Path, dir: &Path, name: &str) -> Result<u64, LakeError> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir).ctx("create directory", dir)?;
    let dest = dir.join(name);
    std::fs::rename(tmp, &dest).ctx("move into place", &dest)?;
    sync_dir(dir)?;
    if created {
        // The new partition directories must survive a crash too.
        let mut d = dir.parent();
        for _ in 0..2 {
            if let Some(p) = d {
                sync_dir(p)?;
                d = p.parent();
            }
        }
    }
    Ok(std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0))
}
