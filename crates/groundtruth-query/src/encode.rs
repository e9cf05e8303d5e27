//! A result as JSON, CSV or an Arrow IPC stream.

use arrow::array::RecordBatch;
use serde_json::{json, Value};

use crate::QueryResult;

/// Formats an analyst can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Rows as JSON objects (timestamps RFC 3339, dates YYYY-MM-DD, lists as
/// arrays).
pub fn rows_json(batches: &[RecordBatch]) -> Result<Vec<Value>, String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        w.write_batches(&refs).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| e.to_string())
}

/// `{columns: [{name, type}], rows: [{...}], row_count, truncated, elapsed_ms}`.
pub fn json(r: &QueryResult) -> Result<Value, String> {
    let columns: Vec<Value> = r
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    Ok(json!({
        "columns": columns,
        "rows": rows_json(&r.batches)?,
        "row_count": r.rows,
        "truncated": r.truncated,
        "elapsed_ms": r.elapsed.as_secs_f64() * 1000.0,
    }))
}

/// CSV with a header line.
pub fn csv(r: &QueryResult) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        if r.batches.is_empty() {
            w.write(&RecordBatch::new_empty(r.schema.clone()))
                .map_err(|e| e.to_string())?;
        }
        for b in &r.batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
    }
    Ok(buf)
}

/// An Arrow IPC stream (schema, then the batches).
pub fn arrow_ipc(r: &QueryResult) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &r.schema)
            .map_err(|e| e.to_string())?;
        for b in &r.batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
        w.finish().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}
