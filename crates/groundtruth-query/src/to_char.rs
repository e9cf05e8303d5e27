//! `to_char` with PostgreSQL's patterns.
//!
//! DataFusion's `to_char(value, format)` takes chrono's `%Y-%m-%d`; an
//! analyst writes PostgreSQL's `YYYY-MM-DD` and got the pattern back as
//! the answer, for every row. [`register`] wraps the session's `to_char`:
//! a format with no `%` is read as PostgreSQL's template patterns
//! ([`chrono_format`]) and handed on in chrono's; one with `%` is chrono's
//! already and passes unchanged.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl};
use datafusion::prelude::SessionContext;

/// PostgreSQL's template patterns and chrono's specifiers, longest first
/// (so `HH24` is read before `HH`, `Month` before `Mon`, `MS` before `MI`).
const PATTERNS: &[(&str, &str, &str)] = &[
    // (pattern, chrono, chrono without padding for FM)
    ("HH24", "%H", "%-H"),
    ("HH12", "%I", "%-I"),
    ("YYYY", "%Y", "%Y"),
    ("IYYY", "%G", "%G"),
    ("Month", "%B", "%B"),
    ("MONTH", "%B", "%B"),
    ("month", "%B", "%B"),
    ("Day", "%A", "%A"),
    ("DAY", "%A", "%A"),
    ("day", "%A", "%A"),
    ("DDD", "%j", "%-j"),
    ("Mon", "%b", "%b"),
    ("MON", "%b", "%b"),
    ("mon", "%b", "%b"),
    ("Dy", "%a", "%a"),
    ("DY", "%a", "%a"),
    ("dy", "%a", "%a"),
    ("YY", "%y", "%y"),
    ("IW", "%V", "%-V"),
    ("HH", "%I", "%-I"),
    ("MI", "%M", "%-M"),
    ("MS", "%3f", "%3f"),
    ("US", "%6f", "%6f"),
    ("SS", "%S", "%-S"),
    ("MM", "%m", "%-m"),
    ("DD", "%d", "%-d"),
    ("AM", "%p", "%p"),
    ("PM", "%p", "%p"),
    ("am", "%P", "%P"),
    ("pm", "%P", "%P"),
    ("TZ", "%Z", "%Z"),
    ("OF", "%:z", "%:z"),
];

/// PostgreSQL's `to_char` template as chrono's format: patterns become
/// specifiers (`FM` before one drops its padding), `"quoted text"` and
/// anything else is literal (a `%` doubled).
pub fn chrono_format(template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push_str(&quoted[..end].replace('%', "%%"));
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        let (fill, body) = match rest.strip_prefix("FM") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        if let Some((p, padded, bare)) = PATTERNS.iter().find(|(p, _, _)| body.starts_with(p)) {
            out.push_str(if fill { bare } else { padded });
            rest = &body[p.len()..];
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A format as the wrapped `to_char` hands it on.
fn translate(format: &str) -> String {
    if format.contains('%') {
        format.to_string()
    } else {
        chrono_format(format)
    }
}

/// Wraps the session's `to_char` (when registered).
pub fn register(ctx: &SessionContext) {
    if let Some(inner) = ctx.state().scalar_functions().get("to_char") {
        ctx.register_udf(ScalarUDF::new_from_impl(PgToChar {
            inner: Arc::clone(inner),
        }));
    }
}

#[derive(Debug)]
struct PgToChar {
    inner: Arc<ScalarUDF>,
}

impl PartialEq for PgToChar {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name() == other.inner.name()
    }
}

impl Eq for PgToChar {}

impl Hash for PgToChar {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "pg_to_char".hash(state);
    }
}

impl ScalarUDFImpl for PgToChar {
    forward_to_inner!();

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(format) = args.args.get_mut(1) {
            *format = match &*format {
                ColumnarValue::Scalar(
                    ScalarValue::Utf8(Some(f))
                    | ScalarValue::LargeUtf8(Some(f))
                    | ScalarValue::Utf8View(Some(f)),
                ) => ColumnarValue::Scalar(ScalarValue::Utf8(Some(translate(f)))),
                ColumnarValue::Array(a) if a.data_type() == &DataType::Utf8 => {
                    let out: StringArray = a
                        .as_string::<i32>()
                        .iter()
                        .map(|f| f.map(translate))
                        .collect();
                    ColumnarValue::Array(Arc::new(out))
                }
                other => other.clone(),
            };
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_templates_read_as_chrono_formats() {
        assert_eq!(chrono_format("YYYY-MM-DD"), "%Y-%m-%d");
        assert_eq!(chrono_format("YYYY-MM-DD HH24:MI:SS"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(chrono_format("FMMM/FMDD"), "%-m/%-d");
        assert_eq!(chrono_format("Mon DD, YYYY"), "%b %d, %Y");
        assert_eq!(chrono_format("\"week\" IW"), "week %V");
        assert_eq!(chrono_format("HH12:MI AM"), "%I:%M %p");
        assert_eq!(chrono_format("100%"), "100%%");
        assert_eq!(chrono_format("YYYY年MM月DD日"), "%Y年%m月%d日");
        assert_eq!(translate("%Y-%m"), "%Y-%m");
    }
}
