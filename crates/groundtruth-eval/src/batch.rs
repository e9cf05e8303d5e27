//! `groundtruth detect`: NDJSON files in, findings and dead letters out.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use groundtruth_event::DecodeOptions;
use groundtruth_finding::calibration::Calibration;
use groundtruth_finding::Finding;
use groundtruth_ingest::{ingest_files, FlushPolicy, IngestCounts, Ingestor};
use groundtruth_lake::{LakeOptions, LakeWriter};
use groundtruth_sql::open_session;
use groundtruth_window::Schedule;
use serde_json::json;

use crate::error::EvalError;
use groundtruth_detect::{run_all_closes, CloseCache, CloseRun, FindingSet};

/// What `detect_files` did.
#[derive(Debug)]
pub struct DetectFilesSummary {
    pub counts: IngestCounts,
    /// Every finding, upserted across the windows, in canonical order.
    pub findings: Vec<Finding>,
    /// The windows judged, in horizon order.
    pub closes: Vec<CloseRun>,
    pub dead_letters: u64,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> EvalError + 'a {
    move |source| EvalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Ingests `inputs` into a scratch lake at `scratch` (which must be empty or
/// absent), judges every window of `schedule` in event time as the live
/// service does (see [`crate::closes`]), writes findings to `output` and
/// the bad events to `dead_letters` (NDJSON each), scores calibrated by
/// `calibration`, reusing work between windows as `cache` allows.
#[allow(clippy::too_many_arguments)]
pub async fn detect_files(
    inputs: &[PathBuf],
    output: &Path,
    dead_letters: &Path,
    scratch: &Path,
    lake: LakeOptions,
    decode: DecodeOptions,
    schedule: &Schedule,
    calibration: &Calibration,
    cache: &CloseCache,
    progress: bool,
) -> Result<DetectFilesSummary, EvalError> {
    let (counts, set, closes) = judge_files(
        inputs,
        scratch,
        lake,
        decode,
        schedule,
        calibration,
        cache,
        progress,
    )
    .await?;
    let findings = set.into_findings();
    write_findings(output, &findings)?;
    let ctx = open_session(scratch).await?;
    let dead = write_dead_letters(&ctx, dead_letters).await?;
    Ok(DetectFilesSummary {
        counts,
        findings,
        closes,
        dead_letters: dead,
    })
}

/// Ingests `inputs` into a scratch lake at `scratch` (empty or absent) and
/// judges every window of `schedule` in event time: what was read, the
/// findings upserted across the windows, and each window's run.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn judge_files(
    inputs: &[PathBuf],
    scratch: &Path,
    lake: LakeOptions,
    decode: DecodeOptions,
    schedule: &Schedule,
    calibration: &Calibration,
    cache: &CloseCache,
    progress: bool,
) -> Result<(IngestCounts, FindingSet, Vec<CloseRun>), EvalError> {
    let zone = lake.zone;
    let lake = LakeWriter::open(scratch, lake)?;
    let mut ing = Ingestor::new(lake, decode, FlushPolicy::default(), "file");
    ingest_files(&mut ing, inputs, progress)?;
    let counts = ing.totals();
    drop(ing);
    let (set, closes) = run_all_closes(scratch, schedule, zone, calibration, cache).await?;
    Ok((counts, set, closes))
}

/// Writes findings to `path`, one per line, through a `.partial` file
/// renamed into place, so a reader never sees half a file.
pub fn write_findings(path: &Path, findings: &[Finding]) -> Result<(), EvalError> {
    let tmp = path.with_extension("partial");
    {
        let f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        let mut w = BufWriter::new(f);
        for finding in findings {
            finding.write_ndjson(&mut w).map_err(io("write", &tmp))?;
        }
        w.flush().map_err(io("write", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))
}

/// Writes the `dead_letters` table as NDJSON: where the line came from, why
/// it was refused, and the line itself (`raw` when it is UTF-8, else
/// `raw_base64`).
async fn write_dead_letters(
    ctx: &datafusion::prelude::SessionContext,
    path: &Path,
) -> Result<u64, EvalError> {
    let q = |source| {
        EvalError::from(groundtruth_detect::DetectError::Query {
            what: "dead letters",
            source,
        })
    };
    let batches = ctx
        .sql(
            "SELECT source, partition, \"offset\", reason_code, field, reason, raw, raw_len, \
             raw_truncated FROM dead_letters ORDER BY source, \"offset\"",
        )
        .await
        .map_err(q)?
        .collect()
        .await
        .map_err(q)?;
    let f = std::fs::File::create(path).map_err(io("create", path))?;
    let mut w = BufWriter::new(f);
    let mut n = 0u64;
    let col = |b: &arrow::array::RecordBatch, name: &'static str, to: DataType| {
        groundtruth_detect::tracks::col(b, "dead letters", name, &to)
    };
    for b in &batches {
        let source = col(b, "source", DataType::Utf8)?;
        let code = col(b, "reason_code", DataType::Utf8)?;
        let field = col(b, "field", DataType::Utf8)?;
        let reason = col(b, "reason", DataType::Utf8)?;
        let part = col(b, "partition", DataType::Int32)?;
        let off = col(b, "offset", DataType::Int64)?;
        let raw = col(b, "raw", DataType::Binary)?;
        let raw_len = col(b, "raw_len", DataType::Int64)?;
        let trunc = col(b, "raw_truncated", DataType::Boolean)?;
        let (source, code, field, reason) = (
            source.as_string::<i32>(),
            code.as_string::<i32>(),
            field.as_string::<i32>(),
            reason.as_string::<i32>(),
        );
        let (part, off, raw_len) = (
            part.as_primitive::<Int32Type>(),
            off.as_primitive::<Int64Type>(),
            raw_len.as_primitive::<Int64Type>(),
        );
        let (raw, trunc) = (raw.as_binary::<i32>(), trunc.as_boolean());
        for r in 0..b.num_rows() {
            let mut o = json!({
                "source": source.value(r),
                "line": off.value(r),
                "reason_code": code.value(r),
                "field": (!field.is_null(r)).then(|| field.value(r)),
                "reason": reason.value(r),
                "raw_len": raw_len.value(r),
                "raw_truncated": trunc.value(r),
            });
            if !part.is_null(r) {
                o["partition"] = json!(part.value(r));
            }
            match std::str::from_utf8(raw.value(r)) {
                Ok(s) => o["raw"] = json!(s),
                Err(_) => o["raw_base64"] = json!(base64(raw.value(r))),
            }
            serde_json::to_writer(&mut w, &o).map_err(|e| EvalError::Io {
                action: "write",
                path: path.to_path_buf(),
                source: e.into(),
            })?;
            w.write_all(b"\n").map_err(io("write", path))?;
            n += 1;
        }
    }
    w.flush().map_err(io("write", path))?;
    Ok(n)
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foob"), "Zm9vYg==");
    }
}
