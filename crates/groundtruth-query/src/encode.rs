//! A result as JSON, CSV or an Arrow IPC stream.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
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
    let schema = formula_safe_schema(&r.schema);
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        if r.batches.is_empty() {
            w.write(&RecordBatch::new_empty(schema.clone()))
                .map_err(|e| e.to_string())?;
        }
        for b in &r.batches {
            let b = formula_safe(b, &schema).map_err(|e| e.to_string())?;
            w.write(&b).map_err(|e| e.to_string())?;
        }
    }
    Ok(buf)
}

/// Whether a spreadsheet would read `v` as a formula (`=`, `+`, `-`, `@`,
/// or a tab or carriage return first; OWASP's list).
fn formula_like(v: &str) -> bool {
    v.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// `v` with a leading `'` when a spreadsheet would run it, except plain
/// numbers (`-3.5` stays a number).
fn defuse(v: &str) -> std::borrow::Cow<'_, str> {
    if formula_like(v) && v.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{v}"))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// Column names defused like values (an alias can be `=HYPERLINK(...)`).
fn formula_safe_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_name(defuse(f.name()).into_owned()))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A batch whose text cells cannot run as spreadsheet formulas.
fn formula_safe(
    b: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let cols = b
        .columns()
        .iter()
        .map(
            |c| match c.as_any().downcast_ref::<arrow::array::StringArray>() {
                Some(s) if s.iter().flatten().any(formula_like) => {
                    let out: arrow::array::StringArray = s
                        .iter()
                        .map(|v| v.map(|v| defuse(v).into_owned()))
                        .collect();
                    Arc::new(out) as arrow::array::ArrayRef
                }
                _ => Arc::clone(c),
            },
        )
        .collect();
    RecordBatch::try_new(Arc::clone(schema), cols)
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

/// A query can return string or binary views (`arrow_cast(x,
/// 'Utf8View')`, functions that return views); results are handed out as
/// plain `Utf8` / `Binary` (also inside lists and structs), the types
/// every client knows (older Arrow readers have no views). Only the result
/// rows are cast.
pub fn plain_strings(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>), arrow::error::ArrowError> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(plain(f.data_type())))
        .collect();
    if fields
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| a.data_type() == b.data_type())
    {
        return Ok((schema.clone(), batches));
    }
    let plain_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = batches
        .into_iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(plain_schema.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(plain_schema.clone(), columns)
        })
        .collect::<Result<_, _>>()?;
    Ok((plain_schema, batches))
}

fn plain(t: &DataType) -> DataType {
    let field = |f: &FieldRef| Arc::new(f.as_ref().clone().with_data_type(plain(f.data_type())));
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, ListBuilder, StringViewArray, StringViewBuilder};

    #[test]
    fn views_are_handed_out_as_plain_strings_and_other_columns_untouched() {
        let mut lists = ListBuilder::new(StringViewBuilder::new());
        lists.values().append_value("a");
        lists.values().append_value("b");
        lists.append(true);
        lists.append(false);
        let list = lists.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
            Field::new("l", list.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringViewArray::from(vec![
                    Some("a long enough string value"),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(list),
            ],
        )
        .unwrap();
        let (s, b) = plain_strings(&schema, vec![batch]).unwrap();
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(s.field(1).data_type(), &DataType::Int64);
        assert!(
            matches!(s.field(2).data_type(), DataType::List(f) if f.data_type() == &DataType::Utf8)
        );
        assert_eq!(b[0].schema(), s);
        let col = b[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(col.value(0), "a long enough string value");
        assert!(col.is_null(1));
        assert!(b[0].column(2).is_null(1));
    }

    #[test]
    fn a_result_without_views_is_returned_as_is() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![7]))])
            .unwrap();
        let (s, b) = plain_strings(&schema, vec![batch.clone()]).unwrap();
        assert!(Arc::ptr_eq(&s, &schema));
        assert_eq!(b[0], batch);
    }
}
