//! Long function calls stop with their statement.
//!
//! The plan's own checks ([`crate::deadline::DeadlineExec`]) run between
//! batches, and dropping a statement's stream stops its tasks at their next
//! await; neither reaches into one function call. A regular expression over
//! a batch of megabyte strings, or the edit distance of two long strings,
//! ran on for tens of seconds after its statement had been answered 408,
//! holding a core no other query could use. So:
//!
//! - the costly functions ([`WATCHED`], and the size-bounded ones of
//!   [`crate::bounded`]) evaluate a batch in slices of rows whose work is
//!   at most [`SLICE_BYTES`] of input (or [`MAX_PAIRS`] compared pairs), and
//!   look at the statement's stop flag before each slice: a stopped
//!   statement's call ends within one slice;
//! - functions whose work grows with the product of two arguments' sizes
//!   (`levenshtein`, `array_has_all`, `array_has_any`) are refused per row past
//!   [`MAX_PAIRS`] (PostgreSQL's `levenshtein` refuses strings over 255
//!   characters).
//!
//! The stop flag is the session's [`QueryCancel`], set when the statement
//! is cancelled, times out or loses its client. A function sees no more of
//! its statement than the session's options, so the flag reaches it there,
//! as [`StopFlag`] (an options extension with nothing to set).
//! While a watched call runs it counts as busy on the flag, so whoever
//! stops a statement can wait for its calls to end ([`QueryCancel::settle`])
//! before the next statement or query takes the core.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};

use crate::deadline::Cancelled;
pub use crate::deadline::{stop_flag, StopFlag};

/// Most input bytes one slice of a watched call reads.
pub const SLICE_BYTES: i64 = 1 << 20;
/// Most rows in one slice of a watched call.
pub const SLICE_ROWS: usize = 4096;
/// Most pairs (characters, list elements) a pairwise function compares
/// for one row, and in one slice.
pub const MAX_PAIRS: i64 = 1 << 24;

/// How a watched function's work grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cost {
    /// With the bytes of its arguments.
    Bytes,
    /// With the product of its first two arguments' sizes (characters of
    /// a string, elements of a list).
    Pairs,
}

/// The functions watched (besides [`crate::bounded`]'s, which are watched
/// too), and how their work grows; [`crate::bounded::register`] wraps
/// them.
pub const WATCHED: &[(&str, Cost)] = &[
    ("regexp_like", Cost::Bytes),
    ("regexp_match", Cost::Bytes),
    ("regexp_count", Cost::Bytes),
    ("regexp_instr", Cost::Bytes),
    ("split_part", Cost::Bytes),
    ("substr_index", Cost::Bytes),
    ("strpos", Cost::Bytes),
    ("find_in_set", Cost::Bytes),
    ("string_to_array", Cost::Bytes),
    ("array_sort", Cost::Bytes),
    ("array_distinct", Cost::Bytes),
    ("array_to_string", Cost::Bytes),
    ("array_position", Cost::Bytes),
    ("array_positions", Cost::Bytes),
    ("array_remove_all", Cost::Bytes),
    ("array_replace_all", Cost::Bytes),
    ("array_has", Cost::Bytes),
    ("flatten", Cost::Bytes),
    // Hashed: linear in their lists.
    ("array_intersect", Cost::Bytes),
    ("array_union", Cost::Bytes),
    ("array_except", Cost::Bytes),
    // Each character or element against each.
    ("levenshtein", Cost::Pairs),
    ("array_has_all", Cost::Pairs),
    ("array_has_any", Cost::Pairs),
];

/// Calls `inner` on `args` slice by slice, each slice's work within the
/// budget of `cost`, stopping before a slice once the statement is
/// stopped. The rows come back as one call would give them.
pub fn invoke(inner: &ScalarUDF, cost: Cost, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
    let rows = args.number_rows;
    // The bound on pairwise work holds whether or not anything can stop
    // the call; the bytes are measured only to slice a stoppable one.
    let pairs = match cost {
        Cost::Pairs => pair_work(inner.name(), &args.args, rows)?,
        Cost::Bytes => None,
    };
    let Some(stop) = stop_flag(&args.config_options) else {
        return inner.invoke_with_args(args);
    };
    let _busy = stop.busy();
    let stopped = || {
        if stop.is_cancelled() {
            Err(DataFusionError::External(Box::new(Cancelled)))
        } else {
            Ok(())
        }
    };
    stopped()?;
    let work = match cost {
        Cost::Pairs => pairs,
        Cost::Bytes => byte_work(&args.args, rows)?,
    };
    let slices = match &work {
        Some(work) => slices(work, budget(cost)),
        None => vec![(0, rows)],
    };
    if slices.len() <= 1 {
        return inner.invoke_with_args(args);
    }
    let mut parts: Vec<ArrayRef> = Vec::with_capacity(slices.len());
    for (start, len) in slices {
        stopped()?;
        let part = ScalarFunctionArgs {
            args: args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Array(a) => ColumnarValue::Array(a.slice(start, len)),
                    scalar => scalar.clone(),
                })
                .collect(),
            arg_fields: args.arg_fields.clone(),
            number_rows: len,
            return_field: Arc::clone(&args.return_field),
            config_options: Arc::clone(&args.config_options),
        };
        parts.push(inner.invoke_with_args(part)?.into_array(len)?);
    }
    let parts: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
    Ok(ColumnarValue::Array(arrow::compute::concat(&parts)?))
}

fn budget(cost: Cost) -> i64 {
    match cost {
        Cost::Bytes => SLICE_BYTES,
        Cost::Pairs => MAX_PAIRS,
    }
}

/// Rows `0..work.len()` cut into slices of at most [`SLICE_ROWS`] rows
/// whose work adds up to at most `budget` (a row over it alone is a slice
/// of its own), as (start, length).
pub fn slices(work: &[i64], budget: i64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut sum) = (0usize, 0i64);
    for (i, w) in work.iter().enumerate() {
        let len = i - start;
        if len > 0 && (len >= SLICE_ROWS || sum.saturating_add(*w) > budget) {
            out.push((start, len));
            start = i;
            sum = 0;
        }
        sum = sum.saturating_add(*w);
    }
    if start < work.len() {
        out.push((start, work.len() - start));
    }
    out
}

/// Each row's input bytes, when some argument is an array (`None`: every
/// argument is a scalar, one call does it).
fn byte_work(args: &[ColumnarValue], rows: usize) -> Result<Option<Vec<i64>>> {
    if !args.iter().any(|a| matches!(a, ColumnarValue::Array(_))) {
        return Ok(None);
    }
    let mut work = vec![0i64; rows];
    for a in args {
        if let ColumnarValue::Array(a) = a {
            for (w, b) in work.iter_mut().zip(crate::weight::value_bytes(a)?) {
                *w = w.saturating_add(b);
            }
        }
    }
    Ok(Some(work))
}

/// Each row's pairs compared (the product of the first two arguments'
/// sizes), when some argument is an array (`None`: every argument is a
/// scalar); refuses a row over [`MAX_PAIRS`] either way.
fn pair_work(name: &str, args: &[ColumnarValue], rows: usize) -> Result<Option<Vec<i64>>> {
    let (Some(a), Some(b)) = (args.first(), args.get(1)) else {
        return Ok(None);
    };
    let (a, b) = (sizes(a, rows)?, sizes(b, rows)?);
    let work: Vec<i64> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.saturating_mul(*y))
        .collect();
    if let Some(w) = work.iter().find(|w| **w > MAX_PAIRS) {
        return exec_err!(
            "{name} would compare {w} pairs of characters or elements in one row; at most {MAX_PAIRS} are allowed in a query (compare shorter values, as PostgreSQL's levenshtein allows 255 characters)"
        );
    }
    let any_array = args.iter().any(|a| matches!(a, ColumnarValue::Array(_)));
    Ok(any_array.then_some(work))
}

/// A pairwise argument's size per row (`rows` of them; a scalar's size in
/// every row): a string's characters, a list's elements, 1 for anything
/// else, 0 for null.
fn sizes(v: &ColumnarValue, rows: usize) -> Result<Vec<i64>> {
    let a = match v {
        ColumnarValue::Array(a) => Arc::clone(a),
        ColumnarValue::Scalar(s) => s.to_array()?,
    };
    let n = a.len();
    fn chars<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<i64> {
        values
            .map(|s| s.map_or(0, |s| s.chars().count() as i64))
            .collect()
    }
    let per_row: Vec<i64> = match a.data_type() {
        DataType::Utf8 => chars(a.as_string::<i32>().iter()),
        DataType::LargeUtf8 => chars(a.as_string::<i64>().iter()),
        DataType::Utf8View => chars(a.as_string_view().iter()),
        DataType::List(_) => a
            .as_list::<i32>()
            .offsets()
            .lengths()
            .map(|l| l as i64)
            .collect(),
        DataType::LargeList(_) => a
            .as_list::<i64>()
            .offsets()
            .lengths()
            .map(|l| l as i64)
            .collect(),
        DataType::FixedSizeList(_, l) => vec![*l as i64; n],
        _ => vec![1; n],
    };
    let per_row: Vec<i64> = (0..n)
        .map(|i| if a.is_null(i) { 0 } else { per_row[i] })
        .collect();
    Ok(if n == 1 && rows != 1 {
        vec![per_row[0]; rows]
    } else {
        per_row
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_keep_every_row_once_within_the_budget() {
        let work = [5, 5, 5, 20, 1, 1, 1];
        assert_eq!(slices(&work, 10), vec![(0, 2), (2, 1), (3, 1), (4, 3)]);
        assert_eq!(slices(&[], 10), Vec::<(usize, usize)>::new());
        let many = vec![0i64; SLICE_ROWS * 2 + 1];
        assert_eq!(
            slices(&many, 10),
            vec![
                (0, SLICE_ROWS),
                (SLICE_ROWS, SLICE_ROWS),
                (2 * SLICE_ROWS, 1)
            ]
        );
    }
}
