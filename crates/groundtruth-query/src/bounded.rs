//! Size bounds on functions whose result grows with an argument.
//!
//! DataFusion's memory pool accounts for operators (joins, sorts,
//! aggregates), not for the values a scalar function builds: a single
//! `repeat('x', 2000000000)`, `range(1, 1e10)` or `replace(repeat('a',
//! 100000), 'a', repeat('b', 100000))` would allocate gigabytes outside the
//! pool and take the process down. [`register`] replaces those functions
//! in an analyst's session by wrappers that compute, from the arguments of
//! every row and before anything is built, how many **bytes** the result
//! will take (an `array_repeat` of a 1 MB string counts its bytes, not its
//! elements), and refuse with a clear error beyond [`MAX_VALUE_BYTES`] per
//! value or [`MAX_CALL_BYTES`] per call (a batch's rows together). Their
//! output is checked again afterwards. This runs in constant folding too
//! (the optimizer evaluates constant calls through the same functions).
//! The string `||` operator is planned as [`ConcatOp`], bounded the same
//! way; list `||` as the bounded `array_concat`/`array_append`/
//! `array_prepend`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::{exec_err, DFSchema, Result};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::watch::Cost;

pub use crate::weight::{MAX_CALL_BYTES, MAX_LIST_BYTES, MAX_LIST_LEN, MAX_VALUE_BYTES};

/// What decides a function's result size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bound {
    /// `repeat(s, n)`: `len(s) * n` bytes.
    Repeat,
    /// `lpad(s, n, fill)`, `rpad`: `n` characters of up to 4 bytes.
    Pad,
    /// `array_repeat(x, n)`: `n` times the bytes of `x`;
    /// `array_resize(a, n, fill)`: `n` times the bytes of `fill` or of
    /// `a`'s largest element.
    Count,
    /// `range(start, stop, step)`, `generate_series`: `(stop - start) / step`
    /// elements of 8 bytes.
    Series,
    /// `replace(s, from, to)`: every `from` in `s` becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, replacement, flags)`: each of up to
    /// `len(s) + 1` matches becomes the replacement, whose group
    /// references (`$n`, `\\n`) each repeat up to all of `s`.
    RegexpReplace,
    /// `concat`, `concat_ws`, `overlay`, `array_concat`, `array_append`,
    /// `array_prepend`, `make_array`: the arguments' bytes together.
    Sum,
    /// Functions whose result is a fixed multiple of their input at most
    /// (`translate`, `encode`, `upper`, `lower`, `initcap`, `to_hex`):
    /// checked by the bytes of their arguments times 4.
    Factor,
    /// Functions whose result is of the order of their input (the watched
    /// ones of [`crate::watch::WATCHED`]): not checked, only evaluated in
    /// slices that stop with their statement.
    Input,
}

/// The functions bounded, and how.
const BOUNDED: &[(&str, Bound)] = &[
    ("repeat", Bound::Repeat),
    ("lpad", Bound::Pad),
    ("rpad", Bound::Pad),
    ("array_repeat", Bound::Count),
    ("array_resize", Bound::Count),
    ("range", Bound::Series),
    ("generate_series", Bound::Series),
    ("replace", Bound::Replace),
    ("regexp_replace", Bound::RegexpReplace),
    ("concat", Bound::Sum),
    ("concat_ws", Bound::Sum),
    ("overlay", Bound::Sum),
    ("array_concat", Bound::Sum),
    ("array_append", Bound::Sum),
    ("array_prepend", Bound::Sum),
    ("make_array", Bound::Sum),
    ("translate", Bound::Factor),
    ("encode", Bound::Factor),
    ("upper", Bound::Factor),
    ("lower", Bound::Factor),
    ("initcap", Bound::Factor),
    ("to_hex", Bound::Factor),
];

/// Wraps the session's own functions named in [`BOUNDED`] and
/// [`crate::watch::WATCHED`] (when registered): each is evaluated in
/// slices that stop with its statement (`watch.rs`), those of [`BOUNDED`]
/// after their size check. Registers [`ConcatOp`] and the bound on
/// repeated constants ([`crate::repeated`]). Put the planner of `||`
/// first afterwards ([`planners_first`]).
pub fn register(ctx: &SessionContext) {
    let state = ctx.state();
    let funcs = state.scalar_functions();
    let bounded = BOUNDED.iter().map(|(n, b)| (*n, *b, Cost::Bytes));
    let watched = crate::watch::WATCHED
        .iter()
        .map(|(n, c)| (*n, Bound::Input, *c));
    for (name, bound, cost) in bounded.chain(watched) {
        if let Some(inner) = funcs.get(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.clone(),
                bound,
                cost,
            }));
        }
    }
    ctx.register_udf(ScalarUDF::new_from_impl(ConcatOp::new()));
    ctx.register_udf(crate::repeated::RepeatedValue::udf().as_ref().clone());
    ctx.add_optimizer_rule(Arc::new(crate::repeated::RepeatedValues::new()));
}

/// `state` with [`ConcatPlanner`] in front of its expression planners (a
/// planner registered later would come after DataFusion's own, which plan
/// list `||` with unbounded functions). Call after [`register`].
pub fn planners_first(
    state: datafusion::execution::session_state::SessionState,
) -> datafusion::execution::session_state::SessionState {
    let funcs = state.scalar_functions();
    let get = |n: &str| funcs.get(n).cloned();
    let planner = ConcatPlanner {
        op: get(ConcatOp::NAME),
        array_concat: get("array_concat"),
        array_append: get("array_append"),
        array_prepend: get("array_prepend"),
    };
    let mut planners: Vec<Arc<dyn ExprPlanner>> = vec![Arc::new(planner)];
    planners.extend(state.expr_planners().iter().cloned());
    datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
        .with_expr_planners(planners)
        .build()
}

#[derive(Debug)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    bound: Bound,
    cost: Cost,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name()
            && self.bound == other.bound
            && self.cost == other.cost
    }
}

impl Eq for Bounded {}

impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
        self.bound.hash(state);
        self.cost.hash(state);
    }
}

/// An argument as i64 per row (`None`: null or not a number).
fn ints(a: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(a, &DataType::Int64)?.as_primitive().clone())
}

/// Each argument as an array: an array as it is, a scalar as one row (not
/// expanded to the batch's rows: a 1 MB constant would otherwise be
/// copied into every row before it is checked).
fn arg_arrays(args: &[ColumnarValue]) -> Result<Vec<ArrayRef>> {
    args.iter()
        .map(|a| match a {
            ColumnarValue::Array(a) => Ok(Arc::clone(a)),
            ColumnarValue::Scalar(s) => s.to_array(),
        })
        .collect()
}

/// Row `i` of a per-row vector made from [`arg_arrays`] (a scalar's one
/// row stands for all).
fn at<T: Copy>(v: &[T], i: usize) -> T {
    if v.len() == 1 {
        v[0]
    } else {
        v[i]
    }
}

/// The group references a replacement string may hold, per row: its `$`
/// and `\` characters (each could start one; 0 for null or not a string).
fn group_references(a: &ArrayRef) -> Result<Vec<i64>> {
    let count = |v: Option<&str>| {
        v.map_or(0, |v| {
            v.bytes().filter(|b| matches!(b, b'$' | b'\\')).count() as i64
        })
    };
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().map(count).collect(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().map(count).collect(),
        DataType::Utf8View => a.as_string_view().iter().map(count).collect(),
        // Anything else: as if every byte were one.
        _ => crate::weight::value_bytes(a)?,
    })
}

/// A list argument's largest element, in bytes, per row.
fn largest_element(a: &ArrayRef) -> Result<Vec<i64>> {
    let n = a.len();
    let per_row = |values: &ArrayRef, offsets: Vec<(usize, usize)>| -> Result<Vec<i64>> {
        let sizes = crate::weight::value_bytes(values)?;
        Ok(offsets
            .into_iter()
            .map(|(s, e)| sizes[s..e].iter().copied().max().unwrap_or(0))
            .collect())
    };
    match a.data_type() {
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let o = l.offsets();
            per_row(
                l.values(),
                (0..n).map(|i| (o[i] as usize, o[i + 1] as usize)).collect(),
            )
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let o = l.offsets();
            per_row(
                l.values(),
                (0..n).map(|i| (o[i] as usize, o[i + 1] as usize)).collect(),
            )
        }
        _ => crate::weight::value_bytes(a),
    }
}

/// A series argument per row: its smallest and largest value (they differ
/// only for an interval step); `None` for null.
type Span = Option<(i128, i128)>;

/// The smallest and largest length of an interval step, in nanoseconds (a
/// month is 28 to 31 days).
fn interval_span(v: IntervalMonthDayNano) -> (i128, i128) {
    let day = 86_400_000_000_000i128;
    let rest = v.days as i128 * day + v.nanoseconds as i128;
    let (a, b) = (
        v.months as i128 * 28 * day + rest,
        v.months as i128 * 31 * day + rest,
    );
    (a.min(b), a.max(b))
}

/// Start, stop and step of a series argument as nanoseconds (dates and
/// timestamps) or as themselves (numbers); an interval step as its
/// smallest and largest length. `None`: not a series this can bound.
fn series_values(a: &ArrayRef) -> Result<Option<Vec<Span>>> {
    let one = |v: Option<i64>| v.map(|v| (v as i128, v as i128));
    let out = match a.data_type() {
        t if t.is_integer() => ints(a)?.iter().map(one).collect(),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let t = cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            let t = cast(&t, &DataType::Int64)?;
            t.as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .map(one)
                .collect()
        }
        DataType::Interval(_) => {
            let i = cast(
                a,
                &DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
            )?;
            i.as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| v.map(interval_span))
                .collect()
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Refuses a call whose result, all rows together, would exceed the call
/// budget, or whose one value would exceed `per_value`.
fn check_sizes(name: &str, sizes: impl Iterator<Item = i64>, per_value: i64) -> Result<()> {
    let mut total = 0i64;
    for b in sizes {
        if b > per_value {
            return exec_err!("{name} would build a value of {b} bytes; at most {per_value} are allowed in a query");
        }
        total = total.saturating_add(b);
        if total > MAX_CALL_BYTES {
            return exec_err!("{name} would build more than {MAX_CALL_BYTES} bytes in one batch of rows; build smaller values or fewer of them");
        }
    }
    Ok(())
}

impl Bounded {
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
        let arrays = arg_arrays(args)?;
        let name = self.inner.name();
        let rows = arrays
            .iter()
            .map(|a| a.len())
            .max()
            .unwrap_or(0)
            .min(rows.max(1));
        let int = |a: &Int64Array, i: usize| {
            let i = if a.len() == 1 { 0 } else { i };
            if a.is_null(i) {
                0
            } else {
                a.value(i).max(0)
            }
        };
        match self.bound {
            Bound::Repeat if arrays.len() >= 2 => {
                let (s, n) = (crate::weight::value_bytes(&arrays[0])?, ints(&arrays[1])?);
                check_sizes(
                    name,
                    (0..rows).map(|i| at(&s, i).saturating_mul(int(&n, i))),
                    MAX_VALUE_BYTES,
                )?;
            }
            Bound::Pad if arrays.len() >= 2 => {
                let n = ints(&arrays[1])?;
                if let Some(v) = (0..rows).map(|i| int(&n, i)).find(|v| *v > MAX_VALUE_BYTES) {
                    return exec_err!("{name} would build a value of {v} characters; at most {MAX_VALUE_BYTES} are allowed in a query");
                }
                check_sizes(
                    name,
                    (0..rows).map(|i| int(&n, i).saturating_mul(4)),
                    i64::MAX,
                )?;
            }
            Bound::Count if arrays.len() >= 2 => {
                let n = ints(&arrays[1])?;
                if let Some(v) = (0..rows).map(|i| int(&n, i)).find(|v| *v > MAX_LIST_LEN) {
                    return exec_err!("{name} would build a list of {v} elements; at most {MAX_LIST_LEN} are allowed in a query");
                }
                let element = if name == "array_repeat" {
                    crate::weight::value_bytes(&arrays[0])?
                } else if arrays.len() >= 3 {
                    crate::weight::value_bytes(&arrays[2])?
                } else {
                    largest_element(&arrays[0])?
                };
                check_sizes(
                    name,
                    (0..rows).map(|i| at(&element, i).max(1).saturating_mul(int(&n, i))),
                    MAX_LIST_BYTES,
                )?;
            }
            Bound::Series => self.check_series(&arrays)?,
            Bound::Replace if arrays.len() >= 3 => {
                let (s, from, to) = (
                    crate::weight::value_bytes(&arrays[0])?,
                    crate::weight::value_bytes(&arrays[1])?,
                    crate::weight::value_bytes(&arrays[2])?,
                );
                check_sizes(
                    name,
                    (0..rows).map(|i| {
                        // An empty `from` matches between every character.
                        let (s, from, to) = (at(&s, i), at(&from, i), at(&to, i));
                        let matches = s / from.max(1) + 1;
                        s.saturating_add(matches.saturating_mul(to))
                    }),
                    MAX_VALUE_BYTES,
                )?;
            }
            Bound::RegexpReplace if arrays.len() >= 3 => {
                let (s, r) = (
                    crate::weight::value_bytes(&arrays[0])?,
                    crate::weight::value_bytes(&arrays[2])?,
                );
                let refs = group_references(&arrays[2])?;
                check_sizes(
                    name,
                    (0..rows).map(|i| {
                        let (s, r, refs) = (at(&s, i), at(&r, i), at(&refs, i));
                        // The replacement's text, and each of its group
                        // references (`$n`, `\n`) up to all of `s`.
                        let per_match = r.saturating_add(refs.saturating_mul(s));
                        s.saturating_add((s + 1).saturating_mul(per_match))
                    }),
                    MAX_VALUE_BYTES,
                )?;
            }
            Bound::Sum | Bound::Factor => {
                let mut total = vec![0i64; rows];
                let mut count = 0i64;
                for a in &arrays {
                    let b = crate::weight::value_bytes(a)?;
                    for (i, t) in total.iter_mut().enumerate() {
                        *t = t.saturating_add(at(&b, i));
                    }
                    count += 1;
                }
                let factor = if self.bound == Bound::Factor { 4 } else { 1 };
                let per_value = if name.starts_with("array") || name == "make_array" {
                    MAX_LIST_BYTES
                } else {
                    MAX_VALUE_BYTES
                };
                check_sizes(
                    name,
                    total
                        .into_iter()
                        .map(|t| t.saturating_mul(factor).saturating_add(count * 8)),
                    per_value,
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    fn check_series(&self, arrays: &[ArrayRef]) -> Result<()> {
        let name = self.inner.name();
        let mut vals: Vec<Vec<Span>> = Vec::with_capacity(arrays.len());
        for a in arrays {
            match series_values(a)? {
                Some(v) => vals.push(v),
                None => return Ok(()),
            }
        }
        let rows = vals.iter().map(Vec::len).max().unwrap_or(0);
        let (start, stop, step) = match vals.as_slice() {
            [stop] => (None, stop, None),
            [start, stop] => (Some(start), stop, None),
            [start, stop, step, ..] => (Some(start), stop, Some(step)),
            [] => return Ok(()),
        };
        for i in 0..rows {
            let get = |a: Option<&Vec<Span>>, default: i128| match a {
                Some(a) => at(a, i),
                None => Some((default, default)),
            };
            let (Some((a, _)), Some((b, _)), Some((lo, hi))) =
                (get(start, 0), get(Some(stop), 0), get(step, 1))
            else {
                continue;
            };
            // A step that can stand still or go both ways (`-1 month 31
            // days` from the 31st) never ends.
            if lo <= 0 && hi >= 0 && (lo, hi) != (0, 0) {
                return exec_err!("{name}'s step can be zero or change direction (months and days of opposite signs); use a step of one sign and unit");
            }
            if (lo, hi) == (0, 0) {
                continue;
            }
            let smallest = if lo > 0 { lo } else { -hi };
            let n = (b - a).abs() / smallest;
            if n > MAX_LIST_LEN as i128 {
                return exec_err!("{name} would build a list of {n} elements; at most {MAX_LIST_LEN} are allowed in a query (a larger step, or a table with the values)");
            }
        }
        Ok(())
    }
}

/// The bytes of a function's result.
fn result_bytes(v: &ColumnarValue) -> usize {
    match v {
        ColumnarValue::Array(a) => a.get_array_memory_size(),
        ColumnarValue::Scalar(s) => s.size(),
    }
}

impl ScalarUDFImpl for Bounded {
    forward_to_inner!();

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.bound == Bound::Input {
            return crate::watch::invoke(&self.inner, self.cost, args);
        }
        self.check(&args.args, args.number_rows)?;
        // Evaluated in slices that stop with the statement (watch.rs).
        let out = crate::watch::invoke(&self.inner, self.cost, args)?;
        let bytes = result_bytes(&out);
        if bytes as i64 > MAX_CALL_BYTES.saturating_mul(2) {
            return exec_err!(
                "{} built {bytes} bytes in one batch of rows; at most {MAX_CALL_BYTES} are allowed in a query",
                self.inner.name()
            );
        }
        Ok(out)
    }
}

/// The string `||` operator (null if any side is null), bounded like
/// `concat`. Planned by [`ConcatPlanner`] for `a || b` on strings.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ConcatOp {
    signature: Signature,
}

impl ConcatOp {
    pub const NAME: &'static str = "string_concat_op";

    fn new() -> ConcatOp {
        ConcatOp {
            signature: Signature::user_defined(datafusion::logical_expr::Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(vec![DataType::Utf8; arg_types.len()])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let unexpanded: Vec<ArrayRef> = arg_arrays(&args.args)?
            .iter()
            .map(|a| cast(a, &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()?;
        let sizes: Vec<Vec<i64>> = unexpanded
            .iter()
            .map(crate::weight::value_bytes)
            .collect::<Result<_>>()?;
        check_sizes(
            "||",
            (0..rows).map(|i| sizes.iter().map(|s| at(s, i)).sum()),
            MAX_VALUE_BYTES,
        )?;
        let arrays: Vec<ArrayRef> = if scalar {
            unexpanded
        } else {
            ColumnarValue::values_to_arrays(&args.args)?
                .iter()
                .map(|a| cast(a, &DataType::Utf8))
                .collect::<std::result::Result<_, _>>()?
        };
        let strings: Vec<&arrow::array::StringArray> =
            arrays.iter().map(|a| a.as_string::<i32>()).collect();
        let mut out = arrow::array::StringBuilder::new();
        let mut row = String::new();
        for i in 0..rows {
            if strings.iter().any(|s| s.is_null(i)) {
                out.append_null();
                continue;
            }
            row.clear();
            for s in &strings {
                row.push_str(s.value(i));
            }
            out.append_value(&row);
        }
        let out: ArrayRef = Arc::new(out.finish());
        if scalar && rows == 1 {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Plans `||`: on strings as [`ConcatOp`], on lists as the session's
/// (bounded) `array_concat`, `array_append` and `array_prepend`, as
/// DataFusion's own planner would with its unbounded ones.
#[derive(Debug)]
struct ConcatPlanner {
    op: Option<Arc<ScalarUDF>>,
    array_concat: Option<Arc<ScalarUDF>>,
    array_append: Option<Arc<ScalarUDF>>,
    array_prepend: Option<Arc<ScalarUDF>>,
}

fn list_depth(t: &DataType) -> usize {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            1 + list_depth(f.data_type())
        }
        _ => 0,
    }
}

impl ExprPlanner for ConcatPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::StringConcat {
            return Ok(PlannerResult::Original(expr));
        }
        let (l, r) = (
            list_depth(&expr.left.get_type(schema)?),
            list_depth(&expr.right.get_type(schema)?),
        );
        let f = match (l, r) {
            (0, 0) => &self.op,
            (l, r) if l == r => &self.array_concat,
            (l, r) if l > r => &self.array_append,
            _ => &self.array_prepend,
        };
        Ok(match f {
            Some(f) => PlannerResult::Planned(f.call(vec![expr.left, expr.right])),
            None => PlannerResult::Original(expr),
        })
    }
}
