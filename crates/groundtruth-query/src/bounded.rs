//! Size bounds on functions whose result grows with an argument.
//!
//! DataFusion's memory pool accounts for operators (joins, sorts,
//! aggregates), not for the values a scalar function builds: a single
//! `repeat('x', 2000000000)` or `range(1, 1e10)` would allocate gigabytes
//! outside the pool. [`register`] replaces those functions in an analyst's
//! session by wrappers that check the size-deciding arguments of every row
//! first and refuse with a clear error beyond [`MAX_VALUE_BYTES`] /
//! [`MAX_LIST_LEN`]; everything else is the original function.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// Largest string a function may build, in bytes (or characters for the
/// padding functions).
pub const MAX_VALUE_BYTES: i64 = 1 << 20;
/// Longest list a function may build.
pub const MAX_LIST_LEN: i64 = 1_000_000;

/// What decides a function's result size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bound {
    /// `repeat(s, n)`: `len(s) * n` bytes.
    Repeat,
    /// `lpad(s, n, ...)`, `rpad`: `n` characters.
    Pad,
    /// `array_repeat(x, n)`, `array_resize(a, n, ...)`: `n` elements.
    Count,
    /// `range(start, stop, step)`, `generate_series`: `(stop - start) / step`.
    Series,
}

/// Wraps the session's own `repeat`, `lpad`, `rpad`, `array_repeat`,
/// `array_resize`, `range` and `generate_series` (when registered).
pub fn register(ctx: &SessionContext) {
    let state = ctx.state();
    let funcs = state.scalar_functions();
    for (name, bound) in [
        ("repeat", Bound::Repeat),
        ("lpad", Bound::Pad),
        ("rpad", Bound::Pad),
        ("array_repeat", Bound::Count),
        ("array_resize", Bound::Count),
        ("range", Bound::Series),
        ("generate_series", Bound::Series),
    ] {
        if let Some(inner) = funcs.get(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.clone(),
                bound,
            }));
        }
    }
}

#[derive(Debug)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    bound: Bound,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name() && self.bound == other.bound
    }
}

impl Eq for Bounded {}

impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
        self.bound.hash(state);
    }
}

/// An argument as i64 per row (`None`: null or not a number).
fn ints(a: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(a, &DataType::Int64)?.as_primitive().clone())
}

/// Dates, timestamps and intervals as nanoseconds, numbers as themselves.
fn series_values(a: &ArrayRef) -> Result<Option<Int64Array>> {
    let ns = match a.data_type() {
        t if t.is_integer() => return Ok(Some(ints(a)?)),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let t = cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            cast(&t, &DataType::Int64)?
        }
        DataType::Interval(_) => {
            let i = cast(
                a,
                &DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
            )?;
            let i = i.as_primitive::<IntervalMonthDayNanoType>();
            let out: Int64Array = i
                .iter()
                .map(|v| {
                    v.map(|v| {
                        let day = 86_400_000_000_000i64;
                        (v.months as i64)
                            .saturating_mul(28 * day)
                            .saturating_add((v.days as i64).saturating_mul(day))
                            .saturating_add(v.nanoseconds)
                    })
                })
                .collect();
            return Ok(Some(out));
        }
        _ => return Ok(None),
    };
    Ok(Some(ns.as_primitive().clone()))
}

impl Bounded {
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let name = self.inner.name();
        match self.bound {
            Bound::Repeat if arrays.len() >= 2 => {
                let n = ints(&arrays[1])?;
                let s = cast(&arrays[0], &DataType::Utf8)?;
                let s = s.as_string::<i32>();
                for i in 0..rows.min(n.len()).min(s.len()) {
                    if n.is_null(i) || s.is_null(i) {
                        continue;
                    }
                    let bytes = (s.value(i).len() as i64).saturating_mul(n.value(i).max(0));
                    if bytes > MAX_VALUE_BYTES {
                        return exec_err!("{name} would build a string of {bytes} bytes; at most {MAX_VALUE_BYTES} are allowed in a query");
                    }
                }
            }
            Bound::Pad | Bound::Count if arrays.len() >= 2 => {
                let max = if self.bound == Bound::Pad {
                    MAX_VALUE_BYTES
                } else {
                    MAX_LIST_LEN
                };
                let n = ints(&arrays[1])?;
                if let Some(v) = n.iter().flatten().find(|v| *v > max) {
                    return exec_err!("{name} would build a value of {v} elements; at most {max} are allowed in a query");
                }
            }
            Bound::Series => {
                let vals: Vec<Option<Int64Array>> =
                    arrays.iter().map(series_values).collect::<Result<_>>()?;
                if vals.iter().any(Option::is_none) {
                    return Ok(());
                }
                let vals: Vec<Int64Array> = vals.into_iter().flatten().collect();
                let (start, stop, step) = match vals.as_slice() {
                    [stop] => (None, stop, None),
                    [start, stop] => (Some(start), stop, None),
                    [start, stop, step, ..] => (Some(start), stop, Some(step)),
                    [] => return Ok(()),
                };
                for i in 0..stop.len() {
                    let get = |a: Option<&Int64Array>, default: i64| match a {
                        Some(a) if a.is_valid(i) => Some(a.value(i)),
                        Some(_) => None,
                        None => Some(default),
                    };
                    let (Some(a), Some(b), Some(st)) =
                        (get(start, 0), get(Some(stop), 0), get(step, 1))
                    else {
                        continue;
                    };
                    if st == 0 {
                        continue;
                    }
                    let n = (b as i128 - a as i128) / st as i128;
                    if n > MAX_LIST_LEN as i128 {
                        return exec_err!("{name} would build a list of {n} elements; at most {MAX_LIST_LEN} are allowed in a query (a larger step, or a table with the values)");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}
