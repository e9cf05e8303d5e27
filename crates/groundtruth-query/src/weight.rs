//! How much a value weighs, and how much a function may build: the limits
//! the bounded functions ([`crate::bounded`]), the watched ones
//! ([`crate::watch`]) and the repeated-constant rule ([`crate::repeated`])
//! hold a query's values to.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use datafusion::common::Result;

/// Largest string a function may build, in bytes (or characters for the
/// padding functions).
pub const MAX_VALUE_BYTES: i64 = 1 << 20;
/// Largest list value a function may build, in bytes.
pub const MAX_LIST_BYTES: i64 = 16 << 20;
/// Most bytes one call of a function may build over all its rows.
pub const MAX_CALL_BYTES: i64 = 16 << 20;
/// Longest list a function may build.
pub const MAX_LIST_LEN: i64 = 1_000_000;

/// The bytes of each row's value of `a`: a string's length, a list's
/// values' bytes, 8 for anything else fixed-size (0 for null).
pub(crate) fn value_bytes(a: &ArrayRef) -> Result<Vec<i64>> {
    let n = a.len();
    fn lengths(l: impl Iterator<Item = usize>) -> Vec<i64> {
        l.map(|v| v as i64).collect()
    }
    let bytes = match a.data_type() {
        DataType::Utf8 => lengths(a.as_string::<i32>().offsets().lengths()),
        DataType::LargeUtf8 => lengths(a.as_string::<i64>().offsets().lengths()),
        DataType::Binary => lengths(a.as_binary::<i32>().offsets().lengths()),
        DataType::LargeBinary => lengths(a.as_binary::<i64>().offsets().lengths()),
        DataType::Utf8View => (0..n)
            .map(|i| a.as_string_view().value(i).len() as i64)
            .collect(),
        DataType::BinaryView => (0..n)
            .map(|i| a.as_binary_view().value(i).len() as i64)
            .collect(),
        t if t.is_primitive() || matches!(t, DataType::Boolean | DataType::Null) => {
            vec![t.primitive_width().unwrap_or(1) as i64; n]
        }
        // Lists, structs, maps: the row's slice of the buffers.
        _ => (0..n)
            .map(|i| {
                a.slice(i, 1)
                    .to_data()
                    .get_slice_memory_size()
                    .map(|b| b as i64)
                    .map_err(Into::into)
            })
            .collect::<Result<_>>()?,
    };
    Ok((0..n)
        .map(|i| if a.is_null(i) { 0 } else { bytes[i].max(0) })
        .collect())
}
